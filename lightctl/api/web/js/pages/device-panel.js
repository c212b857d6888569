// One device's details (GET /devices/{id}), shown beside the map and the device table.

import { api } from "../api.js";
import { clear, put, deviceState, errorBox, fmtTime, h, num, output, stateBadge, yesNo } from "../dom.js";
import { t } from "../i18n.js";
import { store } from "../store.js";

export async function deviceDetails(panel, id, onClose) {
  clear(panel).append(h("p", { class: "muted" }, t("loading")));
  panel.dataset.deviceId = id;
  let d;
  try {
    d = await api(`/devices/${encodeURIComponent(id)}`);
  } catch (err) {
    clear(panel).append(errorBox(err));
    return;
  }
  if (panel.dataset.deviceId !== id) return; // another device was clicked meanwhile
  const inv = store.inventory || { roads: [], zones: [], gateways: [], concentrators: [] };
  const named = (list, id) => (id ? list.find((x) => x.id === id)?.name ?? id : null);
  const rows = [
    ["f.id", d.id],
    ["f.kind", t(`kind.${d.kind}`)],
    ["f.road", named(inv.roads, d.road)], ["f.zone", named(inv.zones, d.zone)],
    ["f.gateway", named([...inv.gateways, ...inv.concentrators], d.gateway)],
    ["f.online", yesNo(d.online)],
    ["f.output", output(d)],
    ["f.power", num(d.power_w, 1, "W")],
    ["f.rated", num(d.rated_w, 0, "W")],
    ["f.last_seen", fmtTime(d.last_seen)],
    ["f.alarms", String(d.open_alarms ?? 0)],
    ["f.maintenance", yesNo(d.maintenance)],
    ["f.profile", d.profile ? `${d.profile.model} (${d.profile.transport})` : null],
    ["f.location", `${Number(d.lat).toFixed(5)}, ${Number(d.lon).toFixed(5)}`],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  const values = d.telemetry?.values || {};
  put(clear(panel),
    h("div", { class: "panel-head" }, h("h3", {}, d.name), stateBadge(deviceState(d)),
      h("button", { type: "button", class: "ghost close", id: "device-panel-close", onclick: onClose, title: t("close") }, "×")),
    h("dl", { class: "facts" }, rows.map(([key, value]) => [h("dt", {}, t(key)), h("dd", {}, value)])),
    Object.keys(values).length
      ? [h("h4", {}, t("f.telemetry")),
        h("dl", { class: "facts telemetry" }, Object.entries(values).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
        d.telemetry.flags?.length ? h("p", { class: "flags" }, d.telemetry.flags.join(", ")) : null]
      : null,
  );
}
