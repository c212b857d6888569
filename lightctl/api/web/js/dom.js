// A tiny element builder and the formatting every page shares.

import { serverNow } from "./clock.js";
import { t } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

// h("div", {class: "x", dataset: {id: 1}, onclick: fn}, child, "text", [more])
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// Element.append, but skipping null / false and flattening arrays (native append would write "null").
export function put(el, ...children) {
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// The console shows times in the site's time zone, whatever the browser's is.
let siteZone = "Asia/Shanghai";

export function setSiteZone(zone) {
  if (zone) siteZone = zone;
}

export function getSiteZone() {
  return siteZone;
}

export function fmtTime(iso, withDate = true) {
  if (!iso) return "–";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso);
  const opts = { timeZone: siteZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (withDate) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat("zh-CN", opts).format(when);
}

// Parts of the site's "now" (the server's clock) or of any Date, on the site's wall clock.
export function siteParts(when = new Date(serverNow())) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: siteZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(when);
  const get = (type) => parts.find((p) => p.type === type)?.value ?? "00";
  return { date: `${get("year")}-${get("month")}-${get("day")}`, hour: Number(get("hour")), minute: Number(get("minute")) };
}

// The site's UTC offset at a moment, as "+08:00", so times typed in the console mean site time.
export function siteOffset(when = new Date(serverNow())) {
  const name = new Intl.DateTimeFormat("en-US", { timeZone: siteZone, timeZoneName: "longOffset" })
    .formatToParts(when).find((p) => p.type === "timeZoneName")?.value ?? "GMT";
  const match = /GMT([+-]\d{2}):?(\d{2})?/.exec(name);
  return match ? `${match[1]}:${match[2] ?? "00"}` : "+00:00";
}

// A night belongs to the date on which it starts (noon to noon).
export function tonight() {
  const now = siteParts();
  if (now.hour >= 12) return now.date;
  const d = new Date(`${now.date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

// A datetime-local input's value ("2026-10-01T18:00") for a moment, on the site's wall clock.
export function siteInputValue(ms) {
  const p = siteParts(new Date(ms));
  return `${p.date}T${String(p.hour).padStart(2, "0")}:${String(p.minute).padStart(2, "0")}`;
}

// ... and back: the moment a datetime-local value means on the site's wall clock (epoch ms).
export function fromSiteInput(value) {
  if (!value) return null;
  const guess = Date.parse(`${value}:00Z`);
  if (Number.isNaN(guess)) return null;
  // The offset at the guessed moment; around a DST change the second look gets it right.
  const offsetMs = (when) => {
    const [sign, hh, mm] = /^([+-])(\d{2}):(\d{2})$/.exec(siteOffset(new Date(when))).slice(1);
    return (sign === "-" ? -1 : 1) * (Number(hh) * 60 + Number(mm)) * 60000;
  };
  const first = guess - offsetMs(guess);
  return guess - offsetMs(first);
}

// ISO 8601 with the site's offset, as the API wants times ("2026-10-01T18:00:00+08:00").
export function siteIso(ms) {
  const p = siteParts(new Date(ms));
  const seconds = String(new Date(ms).getUTCSeconds()).padStart(2, "0");
  const hhmm = `${String(p.hour).padStart(2, "0")}:${String(p.minute).padStart(2, "0")}`;
  return `${p.date}T${hhmm}:${seconds}${siteOffset(new Date(ms))}`;
}

export function pct(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  const n = Number(value);
  return `${(n <= 1 ? n * 100 : n).toFixed(1)} %`;
}

export function num(value, digits = 0, unit = "") {
  if (value === null || value === undefined) return "–";
  return `${Number(value).toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

export function yesNo(value) {
  if (value === null || value === undefined) return "–";
  return value ? t("yes") : t("no");
}

// One word for a device's condition, in the order an operator cares about it.
export function deviceState(d) {
  if (d.maintenance) return "maintenance";
  if (d.open_alarms > 0) return "alarm";
  if (d.online === false) return "offline";
  if (d.online === null || d.online === undefined) return "unknown";
  if (d.on === true) return "on";
  if (d.on === false) return "off";
  return "unknown";
}

export const STATES = ["on", "off", "offline", "alarm", "maintenance", "unknown"];

export function stateBadge(state) {
  return h("span", { class: `badge state-${state}`, dataset: { state } }, t(`state.${state}`));
}

export function sceneName(n) {
  if (n === null || n === undefined) return "–";
  const key = `scene.${n}`;
  const named = t(key);
  return named === key ? t("scene.n", { n }) : named;
}

// What a device is doing, in a few characters: "70 %", "K1 K2", "场景 3 · 80 %".
export function output(d) {
  if (d.kind === "group") {
    if (d.k1 === null && d.k2 === null) return "–";
    return [d.k1 ? "K1" : "", d.k2 ? "K2" : ""].filter(Boolean).join(" ") || t("sch.off");
  }
  if (d.kind === "facade") {
    if (d.scene === null || d.scene === undefined) return "–";
    return d.level === null || d.level === undefined ? sceneName(d.scene) : `${sceneName(d.scene)} · ${d.level} %`;
  }
  if (d.level === null || d.level === undefined) return d.on === null || d.on === undefined ? "–" : d.on ? t("sch.on") : t("sch.off");
  return `${d.level} %`;
}

export function notAvailable(extra) {
  return h("div", { class: "na", dataset: { unavailable: "1" } },
    h("strong", {}, t("na")), h("span", { class: "muted" }, ` ${t("na.long")}`), extra || null);
}

// What went wrong, in words: FastAPI's 422 lists become "field: message; ...".
export function errorText(err) {
  const detail = err?.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body" && p !== "query").join(".")}: ${d.msg}`).join("; ");
  }
  if (detail && typeof detail === "object") return detail.message || JSON.stringify(detail);
  const text = detail ?? err?.message ?? String(err);
  return err?.status ? `${err.status} ${text}` : text;
}

export function errorBox(err) {
  return h("div", { class: "error-box", role: "alert" }, `${t("error")}: ${errorText(err)}`);
}

export function toast(message, kind = "info") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

// fn after `ms` of quiet, and never twice at once: a burst of alarm events costs one request, and a
// slow answer is not joined by more of the same (the browser has 6 connections to a server).
export function debounce(fn, ms = 300) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      console.error(err);
    } finally {
      running = false;
      if (again) {
        again = false;
        call();
      }
    }
  };
  const call = () => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  call.cancel = () => {
    clearTimeout(timer);
    again = false;
  };
  return call;
}

export function heading(key, ...extra) {
  return h("div", { class: "page-head" }, h("h2", {}, t(key)), ...extra);
}
