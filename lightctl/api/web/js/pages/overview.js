// Overview: device counts, KPIs, open alarms, tonight's sun times and day type, system health.

import { api, isUnavailable } from "../api.js";
import { noteServerTime } from "../clock.js";
import { clear, debounce, deviceState, errorBox, fmtTime, h, heading, notAvailable, pct } from "../dom.js";
import { getLang, t } from "../i18n.js";
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
  const reloadAlarms = debounce(() => loadAlarms(alarms));
  const reloadKpi = debounce(() => loadKpi(kpi), 1000); // an open fault counts against the intact rate
  const offs = [
    on("devices", () => drawCounts(counts)),
    on("alarm", () => { reloadAlarms(); reloadKpi(); }),
    on("connected", () => { reloadAlarms(); reloadKpi(); }),
  ];
  const timer = setInterval(() => loadKpi(kpi), 30000); // and the lighting rate as lamps switch
  return () => { offs.forEach((off) => off()); reloadAlarms.cancel(); reloadKpi.cancel(); clearInterval(timer); };
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

const RATES = [["lighting_rate", "ov.kpi.lighting"], ["intact_rate", "ov.kpi.intact"], ["online_rate", "ov.kpi.online"]];

// GET /kpi: {at, lighting_rate | intact_rate | online_rate: {overall, by_road, by_kind}, lighting_rate_night}
// where each rate is {value (0-1, null when nothing counts), ok, total, target, meets, unknown}.
let kpiLoads = 0;

async function loadKpi(box) {
  const ticket = ++kpiLoads;
  let data;
  try {
    data = await api("/kpi");
  } catch (err) {
    if (ticket !== kpiLoads) return;
    clear(box).append(h("h3", {}, t("ov.kpi")), isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  if (ticket !== kpiLoads) return;
  noteServerTime(data.at);
  const item = ([key, label]) => {
    const rate = data[key]?.overall || {};
    const verdict = rate.meets === true ? "meets" : rate.meets === false ? "below" : "";
    return h("div", { class: `kpi ${verdict}`, dataset: { kpi: key, meets: verdict } },
      h("span", { class: "value" }, pct(rate.value)), h("span", { class: "label" }, t(label)),
      rate.target !== null && rate.target !== undefined ? h("span", { class: "muted" }, ` ${t("ov.kpi.target")} ${pct(rate.target)}`) : null,
      h("div", { class: "muted small" }, t("ov.kpi.count", { ok: rate.ok ?? 0, total: rate.total ?? 0 }),
        rate.unknown ? ` · ${t("ov.kpi.unknown", { n: rate.unknown })}` : null,
        key === "lighting_rate" && data.lighting_rate_night?.samples
          ? ` · ${t("ov.kpi.night")} ${pct(data.lighting_rate_night.overall)}` : null));
  };
  const roads = new Map((store.inventory?.roads || []).map((r) => [r.id, r.name]));
  const byRoad = Object.entries(data.lighting_rate?.by_road || {});
  clear(box).append(h("h3", {}, t("ov.kpi")), h("div", { class: "kpis" }, RATES.map(item)),
    byRoad.length
      ? h("table", { class: "grid compact", id: "overview-kpi-roads" },
        h("thead", {}, h("tr", {}, h("th", {}, t("f.road")), h("th", { class: "num" }, t("ov.kpi.lighting")), h("th", { class: "num" }, t("ov.kpi.target")))),
        h("tbody", {}, byRoad.map(([id, rate]) => h("tr", { dataset: { road: id, meets: rate.meets === false ? "below" : "meets" } },
          h("td", {}, roads.get(id) || id), h("td", { class: "num" }, pct(rate.value)), h("td", { class: "num muted" }, pct(rate.target))))))
      : null);
}

// GET /plan without a date: the server's tonight (its clock may not be the browser's).
async function loadNight(box) {
  let plan;
  try {
    plan = await api("/plan");
  } catch (err) {
    clear(box).append(h("h3", {}, t("ov.night")), isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  const sun = plan.sun || {};
  const facts = [
    ["ov.daytype", dayTypeText(plan)],
    ["ov.sunset", fmtTime(sun.sunset, false)],
    ["ov.dusk", fmtTime(sun.civil_dusk, false)],
    ["ov.dawn", fmtTime(sun.civil_dawn, false)],
    ["ov.sunrise", fmtTime(sun.sunrise, false)],
    ["ov.energy", plan.energy_kwh !== undefined && plan.energy_kwh !== null ? `${Number(plan.energy_kwh).toFixed(0)} kWh` : null],
    plan.maintenance?.length ? ["ov.maintenance", String(plan.maintenance.length)] : null,
  ].filter((f) => f && f[1]);
  clear(box).append(h("h3", {}, `${t("ov.night")} ${plan.date}`),
    h("dl", { class: "facts", dataset: { dayType: plan.day_type || "", date: plan.date } }, facts.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])));
}

// "法定节假日 · 国庆节", "Workday · 灯光节 (estimated)": the day type with its holiday and events.
export function dayTypeText(plan) {
  if (!plan.day_type) return null;
  const holiday = getLang() === "zh" ? plan.holiday_zh || plan.holiday : plan.holiday || plan.holiday_zh;
  const parts = [t(`daytype.${plan.day_type}`)];
  if (holiday) parts.push(holiday);
  if (plan.statutory_type === "makeup_workday" && plan.day_type !== "makeup_workday") parts.push(t("daytype.makeup_workday"));
  parts.push(...(plan.events || []));
  return parts.join(" · ") + (plan.estimated ? ` (${t("sch.estimated")})` : "");
}

let alarmLoads = 0; // answers to superseded requests are dropped

async function loadAlarms(box) {
  const ticket = ++alarmLoads;
  let page;
  try {
    page = await api("/alarms", { query: { state: "open", limit: 8 } });
  } catch (err) {
    if (ticket !== alarmLoads) return;
    clear(box).append(h("h3", {}, t("ov.alarms")), isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  if (ticket !== alarmLoads) return;
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
    ["ov.calendar", calendar ? calendarText(calendar) : t("na")],
    health.demo ? ["ov.demo", t("yes")] : null,
  ].filter(Boolean);
  clear(box).append(h("h3", {}, t("ov.system")), h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])));
}

// {"package_years": [2004, 2026], "local_years": [...], "first_missing_year", "calendar_data_missing"}
function calendarText(c) {
  const years = [];
  if (c.package_years?.length) years.push(`${c.package_years[0]}–${c.package_years[c.package_years.length - 1]}`);
  if (c.local_years?.length) years.push(`${t("ov.calendar.local")} ${c.local_years.join(", ")}`);
  const text = years.join("; ");
  return c.calendar_data_missing ? `${text} · ${t("ov.calendar.missing", { year: c.first_missing_year })}` : text;
}
