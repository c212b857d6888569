// The device table: filtered and paged by the server (GET /devices), kept live by the event stream.

import { api } from "../api.js";
import { clear, deviceState, errorBox, fmtTime, h, heading, num, output, stateBadge, STATES } from "../dom.js";
import { t } from "../i18n.js";
import { on, store } from "../store.js";
import { deviceDetails } from "./device-panel.js";

const PAGE_SIZE = 50;
const STATUS_FILTERS = ["online", "offline", "unknown", "on", "off", "alarm", "maintenance"];
const filters = { kind: "", road: "", zone: "", status: "", offset: 0 }; // kept while the console is open

export function render(root) {
  const inv = store.inventory || { roads: [], zones: [] };
  const select = (id, key, options) => h("label", {}, h("span", {}, t(`dev.filter.${key}`)),
    h("select", { id, onchange: (e) => { filters[key] = e.target.value; filters.offset = 0; load(); } },
      h("option", { value: "" }, t("all")),
      options.map(([value, label]) => h("option", { value, selected: filters[key] === value }, label))));
  const tbody = h("tbody");
  const range = h("span", { id: "devices-range", class: "muted" });
  const prev = h("button", { type: "button", id: "devices-prev", class: "ghost", onclick: () => page(-1) }, t("dev.prev"));
  const next = h("button", { type: "button", id: "devices-next", class: "ghost", onclick: () => page(1) }, t("dev.next"));
  const panel = h("div", { id: "device-panel", class: "device-panel", hidden: true });
  const message = h("div");
  root.append(
    heading("nav.devices"),
    h("div", { class: "filters", id: "devices-filters" },
      select("filter-kind", "kind", ["lamp", "group", "facade"].map((k) => [k, t(`kind.${k}`)])),
      select("filter-road", "road", inv.roads.map((r) => [r.id, r.name])),
      select("filter-zone", "zone", inv.zones.map((z) => [z.id, z.name])),
      select("filter-status", "status", STATUS_FILTERS.map((st) => [st, STATES.includes(st) ? t(`state.${st}`) : t(`ov.${st}`)])),
      h("span", { class: "spacer" }), range, prev, next),
    h("div", { class: "table-and-panel" },
      h("div", { class: "table-wrap" },
        h("table", { id: "devices-table", class: "grid" },
          h("thead", {}, h("tr", {}, ["f.id", "f.name", "f.kind", "f.road", "f.gateway", "f.state", "f.output", "f.power", "f.last_seen", "f.alarms"]
            .map((key) => h("th", {}, t(key))))),
          tbody),
        message),
      panel),
  );

  let rows = []; // the devices on this page
  const roadName = new Map(inv.roads.map((r) => [r.id, r.name]));
  const zoneName = new Map(inv.zones.map((z) => [z.id, z.name]));

  function row(d) {
    const state = deviceState(d);
    return h("tr", { dataset: { deviceId: d.id, state }, onclick: () => showPanel(d.id) },
      h("td", { class: "mono" }, d.id), h("td", {}, d.name), h("td", {}, t(`kind.${d.kind}`)),
      h("td", {}, roadName.get(d.road) || zoneName.get(d.zone) || d.road || d.zone || "–"),
      h("td", { class: "mono" }, d.gateway || "–"), h("td", {}, stateBadge(state)),
      h("td", {}, output(d)), h("td", { class: "num" }, num(d.power_w, 1, "W")),
      h("td", {}, fmtTime(d.last_seen)), h("td", { class: "num" }, d.open_alarms ? String(d.open_alarms) : ""));
  }

  function showPanel(id) {
    panel.hidden = false;
    deviceDetails(panel, id, () => { panel.hidden = true; });
  }

  let loads = 0; // answers to superseded requests (filters changed meanwhile) are dropped

  async function load() {
    const ticket = ++loads;
    const query = { kind: filters.kind, road: filters.road, zone: filters.zone, status: filters.status, limit: PAGE_SIZE, offset: filters.offset };
    let result;
    try {
      result = await api("/devices", { query });
    } catch (err) {
      if (ticket === loads) clear(message).append(errorBox(err));
      return;
    }
    if (ticket !== loads) return;
    clear(message);
    rows = result.items;
    clear(tbody).append(...rows.map(row));
    if (!rows.length) message.append(h("p", { class: "muted empty" }, t("dev.empty")));
    const from = result.total ? result.offset + 1 : 0;
    range.textContent = t("dev.range", { from, to: result.offset + rows.length, total: result.total });
    range.dataset.total = String(result.total);
    prev.disabled = result.offset === 0;
    next.disabled = result.offset + rows.length >= result.total;
  }

  function page(step) {
    filters.offset = Math.max(0, filters.offset + step * PAGE_SIZE);
    load();
  }

  const off = on("devices", (ids) => {
    // Live values for the rows on screen; membership of a filtered page changes on the next load.
    const changed = ids === null ? rows.map((d) => d.id) : ids;
    for (const id of changed) {
      const i = rows.findIndex((d) => d.id === id);
      const live = store.devices.get(id);
      if (i < 0 || !live) continue;
      rows[i] = { ...rows[i], ...live };
      tbody.querySelector(`tr[data-device-id="${CSS.escape(id)}"]`)?.replaceWith(row(rows[i]));
    }
  });
  load();
  return off;
}
