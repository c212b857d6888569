// Overview: device counts, KPIs, open alarms, tonight's sun times and day type, system health.

import { api, isUnavailable } from "../api.js";
import { clear, deviceState, errorBox, fmtTime, h, heading, notAvailable, pct, tonight } from "../dom.js";
import { t } from "../i18n.js";
import { on, store } from "../store.js";
import { alarmRow, ALARM_COLUMNS } from "./alarms.js";

const KINDS = ["lamp", "group", "facade"];
const COUNTS = ["total", "online", "lit", "offline", "alarm", "maintenance", "unknown"];

export function render(root) {
  const counts = h("div", { id: "overview-counts", class: "card wide" });
  const kpi = h("div", { id: "overview-kpi", class: "card" }, h("h3", {}, t("ov.kpi")), h("p", { class: "muted" }, t("loading")));
  const night = h("div", { id: "overview-night", class: "card" }, h("h3", {}, t("ov.night")), h("p", { class: "muted" }, t("loading")));
  const alarms = h("div", { id: "overview-alarms", class: "card wide" }, h("h3", {}, t("ov.alarms")));
  const system = h("div", { id: "overview-system", class: "card" }, h("h3", {}, t("ov.system")));
  root.append(heading("nav.overview"), h("div", { class: "cards" }, counts, kpi, night, system, alarms));

  drawCounts(counts);
  loadKpi(kpi);
  loadNight(night);
  loadAlarms(alarms);
  loadSystem(system);
  const offs = [
    on("devices", () => drawCounts(counts)),
    on("alarm", () => loadAlarms(alarms)),
  ];
  return () => offs.forEach((off) => off());
}

function drawCounts(box) {
  const table = Object.fromEntries(KINDS.map((k) => [k, Object.fromEntries(COUNTS.map((c) => [c, 0]))]));
  for (const d of store.devices.values()) {
    const row = table[d.kind];
    if (!row) continue;
    const state = deviceState(d);
    row.total += 1;
    if (d.online) row.online += 1;
    if (d.on) row.lit += 1;
    if (d.online === false) row.offline += 1;
    if (d.online === null || d.online === undefined) row.unknown += 1;
    if (d.open_alarms > 0) row.alarm += 1;
    if (state === "maintenance") row.maintenance += 1;
  }
  const sum = (c) => KINDS.reduce((a, k) => a + table[k][c], 0);
  clear(box).append(
    h("h3", {}, t("ov.devices")),
    h("div", { class: "big-numbers" }, COUNTS.map((c) => h("div", { class: `big c-${c}`, dataset: { count: c } },
      h("span", { class: "value" }, String(sum(c))), h("span", { class: "label" }, t(`ov.${c}`))))),
    h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, h("th", {}, t("f.kind")), COUNTS.map((c) => h("th", {}, t(`ov.${c}`))))),
      h("tbody", {}, KINDS.map((k) => h("tr", { dataset: { kind: k } }, h("td", {}, t(`kind.${k}`)),
        COUNTS.map((c) => h("td", { class: "num" }, String(table[k][c]))))))),
  );
}

async function loadKpi(box) {
  let data;
  try {
    data = await api("/kpi");
  } catch (err) {
    clear(box).append(h("h3", {}, t("ov.kpi")), isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  // Accept {lighting_rate, ...} at the top level or under "overall"; each a number or {value, target}.
  const overall = data.overall || data;
  const item = (key, label) => {
    const raw = overall[key] ?? overall[key.replace("_rate", "")];
    const value = typeof raw === "object" && raw !== null ? raw.value ?? raw.now ?? raw.rate : raw;
    const target = typeof raw === "object" && raw !== null ? raw.target : null;
    return h("div", { class: "kpi", dataset: { kpi: key } }, h("span", { class: "value" }, pct(value)),
      h("span", { class: "label" }, t(label)), target !== null && target !== undefined
        ? h("span", { class: "muted" }, ` ${t("ov.kpi.target")} ${pct(target)}`) : null);
  };
  clear(box).append(h("h3", {}, t("ov.kpi")), h("div", { class: "kpis" },
    item("lighting_rate", "ov.kpi.lighting"), item("intact_rate", "ov.kpi.intact"), item("online_rate", "ov.kpi.online")));
}

async function loadNight(box) {
  const date = tonight();
  let plan;
  try {
    plan = await api("/plan", { query: { date } });
  } catch (err) {
    clear(box).append(h("h3", {}, `${t("ov.night")} ${date}`), isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  const sun = plan.sun || plan.sun_times || plan;
  const dayType = plan.day_type ?? plan.dayType;
  const facts = [
    ["ov.daytype", dayType ? `${t(`daytype.${dayType}`)}${plan.holiday ? ` · ${plan.holiday}` : ""}${plan.event ? ` · ${plan.event}` : ""}` : null],
    ["ov.sunset", sun.sunset ? fmtTime(sun.sunset, false) : null],
    ["ov.dusk", sun.civil_dusk ? fmtTime(sun.civil_dusk, false) : null],
    ["ov.dawn", sun.civil_dawn ? fmtTime(sun.civil_dawn, false) : null],
    ["ov.sunrise", sun.sunrise ? fmtTime(sun.sunrise, false) : null],
    ["ov.energy", plan.energy_kwh !== undefined ? `${Number(plan.energy_kwh).toFixed(0)} kWh` : null],
  ].filter(([, v]) => v);
  clear(box).append(h("h3", {}, `${t("ov.night")} ${date}`),
    h("dl", { class: "facts", dataset: { dayType: dayType || "" } }, facts.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])));
}

async function loadAlarms(box) {
  let page;
  try {
    page = await api("/alarms", { query: { state: "open", limit: 8 } });
  } catch (err) {
    clear(box).append(h("h3", {}, t("ov.alarms")), isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  const count = document.getElementById("nav-alarm-count");
  count.textContent = String(page.total);
  count.hidden = page.total === 0;
  clear(box).append(
    h("h3", {}, `${t("ov.alarms")} (${page.total})`),
    page.items.length
      ? h("table", { class: "grid compact", id: "overview-alarm-table" },
        h("thead", {}, h("tr", {}, ALARM_COLUMNS.map((key) => h("th", {}, t(key))))),
        h("tbody", {}, page.items.map((a) => alarmRow(a, false))))
      : h("p", { class: "muted" }, t("al.empty")),
    h("a", { href: "#/alarms", class: "more" }, `${t("ov.alarms.more")} →`),
  );
}

async function loadSystem(box) {
  try {
    store.health = await api("/health");
  } catch (err) {
    box.append(errorBox(err));
    return;
  }
  const health = store.health;
  const calendar = health.calendar;
  const facts = [
    ["ov.version", health.version],
    ["ov.online", `${health.devices.online} / ${health.devices.total}`],
    ["ov.calendar", calendar ? (typeof calendar === "object" ? JSON.stringify(calendar) : String(calendar)) : t("na")],
    health.demo ? ["ov.demo", t("yes")] : null,
  ].filter(Boolean);
  clear(box).append(h("h3", {}, t("ov.system")), h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])));
}
