// Event scenes: an operator switches a facade zone's scene for a time window (POST /overrides with
// kind "event"); when the window ends the plan resumes by itself.

import { api, isUnavailable } from "../api.js";
import { serverNow, syncClock } from "../clock.js";
import {
  clear, debounce, deviceState, errorBox, errorText, fmtTime, fromSiteInput, h, heading, notAvailable, sceneName,
  siteInputValue, siteIso, stateBadge, toast,
} from "../dom.js";
import { t } from "../i18n.js";
import { can, on, store } from "../store.js";

const MINUTE = 60e3;
const DURATIONS = [10, 30, 60, 120, 180, 360, 720]; // minutes; "custom" shows an end time instead

export function render(root) {
  const zones = store.inventory?.zones || [];
  const cards = h("div", { id: "event-zones", class: "zone-cards" });
  const list = h("div", { id: "event-overrides" });
  const result = h("p", { id: "event-result", role: "status" });
  const allowed = can("operator");
  const field = (key, input, extra) => h("label", {}, h("span", {}, t(key)), input, extra || null);
  const zone = h("select", { id: "event-zone", required: true }, zones.map((z) => h("option", { value: z.id }, z.name)));
  const name = h("input", { id: "event-name", required: true, maxlength: 200, placeholder: "国庆灯光秀" });
  const scene = h("select", { id: "event-scene" },
    Array.from({ length: 16 }, (_, n) => h("option", { value: n, selected: n === 3 }, `${n} · ${sceneName(n)}`)));
  const brightness = h("input", { id: "event-brightness", type: "number", min: 0, max: 100, value: 100, required: true });
  const start = h("input", { id: "event-start", type: "datetime-local" }); // empty: now
  const duration = h("select", { id: "event-duration" },
    DURATIONS.map((m) => h("option", { value: m, selected: m === 180 }, durationText(m))),
    h("option", { value: "custom" }, t("ev.custom")));
  const until = h("input", { id: "event-until", type: "datetime-local" });
  const untilField = field("ev.until", until);
  const reason = h("input", { id: "event-reason", required: true, maxlength: 2000 });
  const submit = h("button", { type: "submit", id: "event-submit", disabled: !allowed }, t("ev.submit"));
  const showUntil = () => {
    const custom = duration.value === "custom";
    untilField.hidden = !custom;
    until.required = custom;
    if (custom && !until.value) until.value = siteInputValue((fromSiteInput(start.value) ?? serverNow()) + 3 * 60 * MINUTE);
  };
  duration.addEventListener("change", showUntil);
  const form = h("form", { id: "event-form", class: "card form-grid", onsubmit: send },
    field("ev.zone", zone), field("ev.name", name), field("ev.scene", scene), field("ev.brightness", brightness),
    field("ev.start", start, h("small", { class: "muted" }, t("ev.start.now"))), field("ev.duration", duration),
    untilField, field("ev.reason", reason),
    h("div", { class: "form-actions" }, submit, allowed ? null : h("span", { class: "muted role-note" }, t("ev.role"))), result);
  if (!allowed) for (const el of form.querySelectorAll("input, select")) el.disabled = true;
  showUntil();

  root.append(heading("ev.title"), h("p", { class: "muted" }, t("ev.intro")),
    h("div", { class: "events-layout" }, form, h("div", {}, h("h3", {}, t("ev.zones")), cards)),
    h("h3", {}, t("ev.active")), list);

  async function send(event) {
    event.preventDefault();
    result.className = "";
    result.textContent = "";
    const chosen = zones.find((z) => z.id === zone.value);
    // Times relative to "now" are the server's now: the demo's clock is not the browser's.
    const now = await syncClock();
    const begin = fromSiteInput(start.value);
    const end = duration.value === "custom" ? fromSiteInput(until.value) : (begin ?? now) + Number(duration.value) * MINUTE;
    const body = {
      targets: chosen ? [...chosen.devices] : [zone.value], // the zone's facade controllers
      kind: "event", event: name.value.trim(),
      scene: Number(scene.value), brightness: Number(brightness.value),
      ...(begin === null ? {} : { start: siteIso(begin) }),
      until: end === null ? null : siteIso(end), reason: reason.value.trim(),
    };
    try {
      const created = await api("/overrides", { method: "POST", body });
      result.textContent = t("ev.done", { id: created.id, until: fmtTime(created.until) });
      result.className = "ok";
      result.dataset.overrideId = created.id;
      toast(result.textContent);
      loadList(list);
    } catch (err) {
      result.textContent = isUnavailable(err) ? t("na") : errorText(err);
      result.className = "error";
    }
  }

  drawZones(cards);
  loadList(list);
  const reload = debounce(() => loadList(list));
  const offs = [on("devices", () => drawZones(cards)), on("override", reload), on("connected", reload)];
  // An override's end passes without an event: look again now and then.
  const timer = setInterval(() => loadList(list), 30000);
  return () => { offs.forEach((off) => off()); reload.cancel(); clearInterval(timer); };
}

function durationText(minutes) {
  return minutes < 60 ? t("ev.minutes", { n: minutes }) : t("ev.hours", { n: minutes / 60 });
}

// A card per zone, showing what its controller reports (not what was asked of it).
function drawZones(box) {
  clear(box);
  for (const zone of store.inventory?.zones || []) {
    const members = zone.devices.map((id) => store.devices.get(id)).filter(Boolean);
    const lead = members[0];
    const scene = lead?.scene ?? null;
    const state = lead ? deviceState(lead) : "unknown";
    box.append(h("div", { class: "zone-card", dataset: { zoneId: zone.id, scene: scene ?? "", state } },
      h("strong", {}, zone.name),
      stateBadge(state),
      h("div", { class: "scene-now" }, sceneName(scene),
        scene && lead?.level !== null && lead?.level !== undefined ? ` · ${lead.level} %` : "")));
  }
}

let listLoads = 0; // answers to superseded requests are dropped

// GET /overrides (newest first): {items: [{id, kind, event, targets, state: {on, level, k1, k2, scene,
// brightness}, start, until, reason, created_by, created_at, ended_at, active}], total, ...}.
// Listed: those in force (`active`, by the server's clock) and those still to come.
async function loadList(box) {
  const ticket = ++listLoads;
  let page;
  try {
    page = await api("/overrides", { query: { limit: 200 } });
  } catch (err) {
    if (ticket === listLoads) clear(box).append(isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  if (ticket !== listLoads) return;
  const now = serverNow();
  const current = page.items.filter((o) => o.active || (!o.ended_at && Date.parse(o.start) > now))
    .sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
  if (!current.length) {
    clear(box).append(h("p", { class: "muted" }, t("ev.none")));
    return;
  }
  const end = async (o) => {
    try {
      await api(`/overrides/${o.id}`, { method: "DELETE" });
      toast(`${t("ev.ended")} #${o.id}`);
    } catch (err) {
      toast(errorText(err), "error");
    }
    loadList(box);
  };
  clear(box).append(h("table", { class: "grid compact", id: "override-table" },
    h("thead", {}, h("tr", {}, ["f.id", "f.kind", "sch.target", "ev.name", "f.output", "ev.start", "ev.until", "ev.reason", "ev.by", ""]
      .map((k) => h("th", {}, k ? t(k) : "")))),
    h("tbody", {}, current.map((o) => h("tr", { dataset: { overrideId: o.id, kind: o.kind, when: o.active ? "now" : "coming" } },
      h("td", { class: "mono" }, String(o.id)),
      h("td", {}, t(`ev.kind.${o.kind}`), o.active ? null : h("span", { class: "badge coming" }, t("ev.coming"))),
      h("td", {}, targetNames(o.targets)),
      h("td", {}, o.event || "–"), h("td", {}, describe(o.state || {})), h("td", {}, fmtTime(o.start)), h("td", {}, fmtTime(o.until)),
      h("td", { class: "note" }, o.reason || ""), h("td", {}, o.created_by || ""),
      h("td", {}, can("operator")
        ? h("button", { type: "button", class: "small", dataset: { action: "end", overrideId: o.id }, onclick: () => end(o) }, t("ev.end"))
        : null))))));
}

// "龙城国际", "恒安路 (road)": targets as people know them.
function targetNames(targets) {
  const inv = store.inventory || {};
  const named = (list, id) => (list || []).find((x) => x.id === id)?.name;
  return (targets || []).map((target) => {
    const [kind, id] = target.includes(":") ? target.split(":", 2) : ["", target];
    if (kind === "road") return named(inv.roads, id) || target;
    if (kind === "zone") return named(inv.zones, id) || target;
    if (kind === "gateway") return named(inv.gateways, id) || target;
    if (kind === "concentrator") return named(inv.concentrators, id) || target;
    if (kind === "kind") return t(`kind.${id}`);
    return store.devices.get(target)?.name || target;
  }).join(", ");
}

function describe(o) {
  const parts = [];
  if (o.scene !== undefined && o.scene !== null) parts.push(sceneName(o.scene));
  if (o.brightness !== undefined && o.brightness !== null) parts.push(`${o.brightness} %`);
  if (o.on !== undefined && o.on !== null) parts.push(o.on ? t("sch.on") : t("sch.off"));
  if (o.level !== undefined && o.level !== null) parts.push(`${o.level} %`);
  for (const k of ["k1", "k2"]) if (o[k] !== undefined && o[k] !== null) parts.push(`${k.toUpperCase()} ${o[k] ? t("sch.on") : t("sch.off")}`);
  return parts.join(", ") || "–";
}
