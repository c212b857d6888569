// The night's plan as a chart: one lane per target, steps drawn over the night (GET /plan).

import { api, isUnavailable } from "../api.js";
import { clear, put, errorBox, fmtTime, h, heading, notAvailable, s, sceneName, siteOffset, tonight } from "../dom.js";
import { t } from "../i18n.js";
import { store } from "../store.js";

const LANE = 54;
const LABEL_W = 190;
const AXIS_H = 30;
const choice = { date: null, target: "" };

export function render(root) {
  const inv = store.inventory || { roads: [], zones: [], gateways: [] };
  choice.date = choice.date || tonight();
  const date = h("input", { type: "date", id: "schedule-date", value: choice.date });
  const target = h("select", { id: "schedule-target" },
    h("option", { value: "" }, t("all")),
    h("optgroup", { label: t("f.kind") }, ["lamp", "group", "facade"].map((k) => h("option", { value: `kind:${k}` }, t(`kind.${k}`)))),
    h("optgroup", { label: t("f.road") }, inv.roads.map((r) => h("option", { value: `road:${r.id}` }, r.name))),
    h("optgroup", { label: t("f.zone") }, inv.zones.map((z) => h("option", { value: `zone:${z.id}` }, z.name))),
    h("optgroup", { label: t("f.gateway") }, inv.gateways.map((g) => h("option", { value: `gateway:${g.id}` }, g.name))));
  target.value = choice.target;
  const out = h("div", { id: "schedule-out" });
  const show = () => { choice.date = date.value || tonight(); choice.target = target.value; load(out); };
  root.append(
    heading("nav.schedule"),
    h("div", { class: "filters" },
      h("label", {}, h("span", {}, t("sch.date")), date),
      h("label", {}, h("span", {}, t("sch.target")), target),
      h("button", { type: "button", id: "schedule-show", onclick: show }, t("sch.show")),
      h("button", { type: "button", class: "ghost", id: "schedule-tonight", onclick: () => { date.value = tonight(); show(); } }, t("sch.tonight"))),
    out,
  );
  date.addEventListener("change", show);
  target.addEventListener("change", show);
  load(out);
  return null;
}

let loads = 0; // answers to superseded requests (a quick change of date or target) are dropped

async function load(out) {
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
  const night = normalise(plan);
  out.dataset.state = "ready";
  const facts = [
    night.dayType ? `${t("ov.daytype")}: ${t(`daytype.${night.dayType}`)}${night.holiday ? ` · ${night.holiday}` : ""}${night.estimated ? ` (${t("sch.estimated")})` : ""}` : null,
    night.sun.sunset ? `${t("ov.sunset")} ${fmtTime(night.sun.sunset, false)}` : null,
    night.sun.sunrise ? `${t("ov.sunrise")} ${fmtTime(night.sun.sunrise, false)}` : null,
    night.energy !== null ? `${t("ov.energy")} ${night.energy.toFixed(1)} kWh` : null,
  ].filter(Boolean);
  clear(out).append(h("p", { class: "night-facts", dataset: { dayType: night.dayType || "" } }, facts.join("   ·   ")));
  if (!night.rows.some((r) => r.steps.length)) {
    out.append(h("p", { class: "muted empty" }, t("sch.empty")));
    return;
  }
  out.append(chart(night), stepsTable(night));
}

// The plan preview's shape is read generously: rows under targets / items / programs, or one row.
function normalise(plan) {
  const rowsIn = plan.targets || plan.items || plan.programs || (plan.steps ? [plan] : []);
  const rows = rowsIn.map((row) => ({
    label: row.name || row.target || row.id || row.program || "",
    program: row.program || row.program_name || "",
    steps: (row.steps || []).map((st) => ({ ...st, at: new Date(st.at ?? st.time ?? st.ts ?? st.start) }))
      .filter((st) => !Number.isNaN(st.at.getTime())).sort((a, b) => a.at - b.at),
  }));
  const sun = plan.sun || plan.sun_times || {};
  const energy = plan.energy_kwh ?? plan.energy?.kwh ?? null;
  return {
    rows, sun, energy: energy === null ? null : Number(energy),
    dayType: plan.day_type ?? plan.dayType ?? null, holiday: plan.holiday ?? null, estimated: Boolean(plan.estimated),
  };
}

function chart(night) {
  const start = new Date(`${choice.date}T12:00:00${siteOffset(new Date(`${choice.date}T12:00:00Z`))}`).getTime();
  const times = night.rows.flatMap((r) => r.steps.map((st) => st.at.getTime()));
  const sunset = night.sun.sunset ? new Date(night.sun.sunset).getTime() : start + 6 * 3600e3;
  const sunrise = night.sun.sunrise ? new Date(night.sun.sunrise).getTime() : start + 18 * 3600e3;
  const t0 = Math.max(start, Math.min(sunset - 3600e3, ...times) - 1800e3);
  const t1 = Math.min(start + 24 * 3600e3, Math.max(sunrise + 3600e3, ...times) + 1800e3);
  const width = 1100;
  const plotW = width - LABEL_W - 20;
  const x = (ms) => LABEL_W + ((ms - t0) / (t1 - t0)) * plotW;
  const height = AXIS_H + night.rows.length * LANE + 10;
  const svg = s("svg", { id: "schedule-chart", viewBox: `0 0 ${width} ${height}`, class: "chart" });

  for (let hour = Math.ceil(t0 / 3600e3) * 3600e3; hour <= t1; hour += 3600e3) {
    const label = fmtTime(new Date(hour).toISOString(), false);
    put(svg, s("line", { class: "grid-line", x1: x(hour), x2: x(hour), y1: AXIS_H - 6, y2: height }),
      label.endsWith(":00") && Number(label.slice(0, 2)) % 2 === 0
        ? s("text", { class: "axis", x: x(hour), y: AXIS_H - 12, "text-anchor": "middle" }, label) : null);
  }
  for (const [key, iso] of [["ov.sunset", night.sun.sunset], ["ov.sunrise", night.sun.sunrise]]) {
    if (!iso) continue;
    const at = x(new Date(iso).getTime());
    put(svg, s("line", { class: "sun-line", x1: at, x2: at, y1: AXIS_H - 4, y2: height }),
      s("text", { class: "sun-label", x: at + 4, y: height - 4 }, t(key)));
  }
  const now = Date.now();
  if (now > t0 && now < t1) svg.append(s("line", { class: "now-line", x1: x(now), x2: x(now), y1: AXIS_H - 4, y2: height }));

  night.rows.forEach((row, i) => {
    const top = AXIS_H + i * LANE;
    const lane = s("g", { class: "lane", dataset: { target: row.label } },
      s("rect", { class: "lane-bg", x: LABEL_W, y: top + 4, width: plotW, height: LANE - 8 }),
      s("text", { class: "lane-label", x: 8, y: top + LANE / 2 + 4 }, row.label + (row.program ? ` · ${row.program}` : "")));
    const spans = row.steps.map((st, j) => ({ st, from: st.at.getTime(), to: row.steps[j + 1]?.at.getTime() ?? t1 }));
    for (const { st, from, to } of spans) {
      const x0 = x(Math.max(from, t0)), x1 = x(Math.min(to, t1));
      if (x1 <= x0) continue;
      if (st.k1 !== undefined && st.k1 !== null || st.k2 !== undefined && st.k2 !== null) {
        const half = (LANE - 12) / 2;
        if (st.k1) lane.append(s("rect", { class: "seg k1", x: x0, y: top + 6, width: x1 - x0, height: half - 1 }));
        if (st.k2) lane.append(s("rect", { class: "seg k2", x: x0, y: top + 6 + half, width: x1 - x0, height: half - 1 }));
      } else if (st.scene !== undefined && st.scene !== null) {
        if (st.scene > 0) {
          put(lane, s("rect", { class: `seg scene scene-${Math.min(st.scene, 4)}`, x: x0, y: top + 8, width: x1 - x0, height: LANE - 16 }),
            s("text", { class: "seg-label", x: x0 + 4, y: top + LANE / 2 + 4 }, sceneName(st.scene)));
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

function stepsTable(night) {
  const rows = night.rows.flatMap((row) => row.steps.map((st) => ({ row, st }))).sort((a, b) => a.st.at - b.st.at);
  return h("table", { class: "grid compact", id: "schedule-steps" },
    h("thead", {}, h("tr", {}, ["sch.time", "sch.target", "sch.action", "sch.source"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows.map(({ row, st }) => h("tr", {},
      h("td", {}, fmtTime(st.at.toISOString())), h("td", {}, row.label),
      h("td", {}, action(st)), h("td", { class: "muted" }, st.source || st.rule || row.program || "")))));
}
