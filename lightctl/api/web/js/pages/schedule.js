// The night's plan as a chart: one lane per target, steps drawn over the night (GET /plan).

import { api, isUnavailable } from "../api.js";
import { serverNow } from "../clock.js";
import { clear, errorBox, fmtTime, h, heading, notAvailable, put, s, sceneName } from "../dom.js";
import { t } from "../i18n.js";
import { store } from "../store.js";
import { dayTypeText } from "./overview.js";

const LANE = 54;
const LABEL_W = 190;
const AXIS_H = 30;
const choice = { date: null, target: "" };

export function render(root) {
  const inv = store.inventory || { roads: [], zones: [], gateways: [], concentrators: [] };
  // Empty until chosen: the server's tonight is asked for (the demo's clock is not the browser's).
  const date = h("input", { type: "date", id: "schedule-date", value: choice.date || "" });
  const target = h("select", { id: "schedule-target" },
    h("option", { value: "" }, t("all")),
    h("optgroup", { label: t("f.kind") }, ["lamp", "group", "facade"].map((k) => h("option", { value: `kind:${k}` }, t(`kind.${k}`)))),
    h("optgroup", { label: t("f.road") }, inv.roads.map((r) => h("option", { value: `road:${r.id}` }, r.name))),
    h("optgroup", { label: t("f.zone") }, inv.zones.map((z) => h("option", { value: `zone:${z.id}` }, z.name))),
    h("optgroup", { label: t("f.gateway") }, [...inv.gateways, ...(inv.concentrators || [])].map((g) =>
      h("option", { value: `${inv.gateways.includes(g) ? "gateway" : "concentrator"}:${g.id}` }, g.name))));
  target.value = choice.target;
  const out = h("div", { id: "schedule-out" });
  const show = () => { choice.date = date.value || null; choice.target = target.value; load(out, date); };
  root.append(
    heading("nav.schedule"),
    h("div", { class: "filters" },
      h("label", {}, h("span", {}, t("sch.date")), date),
      h("label", {}, h("span", {}, t("sch.target")), target),
      h("button", { type: "button", id: "schedule-show", onclick: show }, t("sch.show")),
      h("button", { type: "button", class: "ghost", id: "schedule-tonight", onclick: () => { date.value = ""; show(); } }, t("sch.tonight"))),
    out,
  );
  date.addEventListener("change", show);
  target.addEventListener("change", show);
  load(out, date);
  return null;
}

let loads = 0; // answers to superseded requests (a quick change of date or target) are dropped

// GET /plan?date=&target=: NightPreview.to_json() (lightctl/schedule/preview.py): {date, start, end,
// day_type, statutory_type, holiday, holiday_zh, events, estimated, sun: {sunset, civil_dusk,
// civil_dawn, sunrise}, devices, groups: [{kind, devices, plan, rule, program, program_name,
// overrides, steps: [{at, what, trigger, source, state: {on, level, k1, k2, scene, brightness},
// summary}], energy_kwh}], maintenance, energy_kwh}
async function load(out, dateInput) {
  const ticket = ++loads;
  clear(out).append(h("p", { class: "muted" }, t("loading")));
  let plan;
  try {
    plan = await api("/plan", { query: { date: choice.date, target: choice.target } });
  } catch (err) {
    if (ticket !== loads) return;
    clear(out).append(isUnavailable(err) ? notAvailable() : errorBox(err));
    out.dataset.state = "unavailable";
    return;
  }
  if (ticket !== loads) return;
  if (!dateInput.value) dateInput.value = plan.date;
  out.dataset.state = "ready";
  out.dataset.date = plan.date;
  const sun = plan.sun || {};
  const facts = [
    plan.day_type ? `${t("ov.daytype")}: ${dayTypeText(plan)}` : null,
    sun.sunset ? `${t("ov.sunset")} ${fmtTime(sun.sunset, false)}` : null,
    sun.sunrise ? `${t("ov.sunrise")} ${fmtTime(sun.sunrise, false)}` : null,
    t("sch.devices", { n: plan.devices ?? 0 }),
    plan.energy_kwh !== undefined && plan.energy_kwh !== null ? `${t("ov.energy")} ${Number(plan.energy_kwh).toFixed(1)} kWh` : null,
  ].filter(Boolean);
  const rows = (plan.groups || []).map(lane);
  clear(out).append(h("p", { class: "night-facts", dataset: { dayType: plan.day_type || "" } }, facts.join("   ·   ")));
  if (!rows.some((r) => r.steps.length)) {
    out.append(h("p", { class: "muted empty" }, t("sch.empty")));
    return;
  }
  out.append(chart(plan, rows), stepsTable(rows));
}

// One lane per group of devices sharing a plan choice and overrides: "单灯 ×218" over "主干道调光".
function lane(group) {
  const label = `${t(`kind.${group.kind}`)} ×${group.devices.length}` + (group.overrides?.length ? ` · ${group.overrides.join(", ")}` : "");
  const sub = group.program_name || group.program || t("sch.default");
  const steps = (group.steps || []).map((st) => ({ ...st, ...(st.state || {}), at: new Date(st.at) }))
    .filter((st) => !Number.isNaN(st.at.getTime())).sort((a, b) => a.at - b.at);
  return { label: `${label} · ${sub}`, short: label, sub, kind: group.kind, group, steps };
}

function chart(plan, rows) {
  const start = new Date(plan.start).getTime();
  const end = new Date(plan.end).getTime();
  // From an hour before the first change of the evening to an hour after the last of the morning;
  // the night's own start (noon) is not a change.
  const times = rows.flatMap((r) => r.steps.filter((st) => st.trigger !== "night_start").map((st) => st.at.getTime()));
  const sunset = plan.sun?.sunset ? new Date(plan.sun.sunset).getTime() : start + 6 * 3600e3;
  const sunrise = plan.sun?.sunrise ? new Date(plan.sun.sunrise).getTime() : start + 18 * 3600e3;
  const t0 = Math.max(start, Math.min(sunset, ...times) - 3600e3);
  const t1 = Math.min(end, Math.max(sunrise, ...times) + 3600e3);
  const width = 1100;
  const plotW = width - LABEL_W - 20;
  const x = (ms) => LABEL_W + ((ms - t0) / (t1 - t0)) * plotW;
  const height = AXIS_H + rows.length * LANE + 10;
  const svg = s("svg", { id: "schedule-chart", viewBox: `0 0 ${width} ${height}`, class: "chart" });

  for (let hour = Math.ceil(t0 / 3600e3) * 3600e3; hour <= t1; hour += 3600e3) {
    const label = fmtTime(new Date(hour).toISOString(), false);
    put(svg, s("line", { class: "grid-line", x1: x(hour), x2: x(hour), y1: AXIS_H - 6, y2: height }),
      label.endsWith(":00") && Number(label.slice(0, 2)) % 2 === 0
        ? s("text", { class: "axis", x: x(hour), y: AXIS_H - 12, "text-anchor": "middle" }, label) : null);
  }
  for (const [key, iso] of [["ov.sunset", plan.sun?.sunset], ["ov.sunrise", plan.sun?.sunrise]]) {
    if (!iso) continue;
    const at = x(new Date(iso).getTime());
    put(svg, s("line", { class: "sun-line", x1: at, x2: at, y1: AXIS_H - 4, y2: height }),
      s("text", { class: "sun-label", x: at + 4, y: height - 4 }, t(key)));
  }
  const now = serverNow();
  if (now > t0 && now < t1) svg.append(s("line", { class: "now-line", x1: x(now), x2: x(now), y1: AXIS_H - 4, y2: height }));

  rows.forEach((row, i) => {
    const top = AXIS_H + i * LANE;
    const lane = s("g", { class: "lane", dataset: { kind: row.kind, program: row.group.program || "" } },
      s("rect", { class: "lane-bg", x: LABEL_W, y: top + 4, width: plotW, height: LANE - 8 }),
      s("text", { class: "lane-label", x: 8, y: top + LANE / 2 - 3 }, s("title", {}, row.group.devices.join(", ")), clip(row.short, 24)),
      s("text", { class: "lane-sub", x: 8, y: top + LANE / 2 + 13 }, clip(row.sub, 24)));
    const spans = row.steps.map((st, j) => ({ st, from: st.at.getTime(), to: row.steps[j + 1]?.at.getTime() ?? t1 }));
    for (const { st, from, to } of spans) {
      const x0 = x(Math.max(from, t0)), x1 = x(Math.min(to, t1));
      if (x1 <= x0) continue;
      if (row.kind === "group") {
        const half = (LANE - 12) / 2;
        if (st.k1) lane.append(s("rect", { class: "seg k1", x: x0, y: top + 6, width: x1 - x0, height: half - 1 }));
        if (st.k2) lane.append(s("rect", { class: "seg k2", x: x0, y: top + 6 + half, width: x1 - x0, height: half - 1 }));
      } else if (row.kind === "facade") {
        if (st.scene > 0 && st.brightness !== 0) {
          put(lane, s("rect", { class: `seg scene scene-${Math.min(st.scene, 4)}`, dataset: { scene: st.scene }, x: x0, y: top + 8, width: x1 - x0, height: LANE - 16 }),
            x1 - x0 > 40 ? s("text", { class: "seg-label", x: x0 + 4, y: top + LANE / 2 + 4 }, sceneName(st.scene)) : null);
        }
      } else {
        const level = st.on === false ? 0 : st.level ?? (st.on ? 100 : 0);
        const barH = ((LANE - 12) * level) / 100;
        if (level > 0) {
          put(lane, s("rect", { class: "seg level", x: x0, y: top + LANE - 6 - barH, width: x1 - x0, height: barH }),
            x1 - x0 > 26 ? s("text", { class: "seg-label", x: x0 + 3, y: top + LANE - 10 }, `${level}%`) : null);
        }
      }
    }
    svg.append(lane);
  });
  return h("div", { class: "chart-wrap" }, svg);
}

function action(st) {
  const parts = [];
  if (st.on !== undefined && st.on !== null) parts.push(st.on ? t("sch.on") : t("sch.off"));
  if (st.level !== undefined && st.level !== null) parts.push(`${st.level} %`);
  if (st.k1 !== undefined && st.k1 !== null) parts.push(`K1 ${st.k1 ? t("sch.on") : t("sch.off")}`);
  if (st.k2 !== undefined && st.k2 !== null) parts.push(`K2 ${st.k2 ? t("sch.on") : t("sch.off")}`);
  if (st.scene !== undefined && st.scene !== null) parts.push(sceneName(st.scene));
  if (st.brightness !== undefined && st.brightness !== null) parts.push(`${st.brightness} %`);
  return parts.join(", ");
}

function stepsTable(lanes) {
  const rows = lanes.flatMap((row) => row.steps.map((st) => ({ row, st }))).sort((a, b) => a.st.at - b.st.at);
  return h("table", { class: "grid compact", id: "schedule-steps" },
    h("thead", {}, h("tr", {}, ["sch.time", "sch.target", "sch.step", "sch.action", "sch.source"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows.map(({ row, st }) => h("tr", { dataset: { trigger: st.trigger || "" } },
      h("td", {}, fmtTime(st.at.toISOString())), h("td", {}, row.label), h("td", { class: "mono" }, st.what || ""),
      h("td", {}, action(st) || "–"), h("td", { class: "muted" }, st.source || "")))));
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
