// Event scenes: an operator switches a facade zone's scene for a time window (POST /overrides).

import { api, isUnavailable } from "../api.js";
import { clear, deviceState, errorBox, fmtTime, h, heading, notAvailable, sceneName, siteOffset, siteParts, stateBadge, toast } from "../dom.js";
import { t } from "../i18n.js";
import { can, on, store } from "../store.js";

const HOUR = 3600e3;

export function render(root) {
  const zones = store.inventory?.zones || [];
  const cards = h("div", { id: "event-zones", class: "zone-cards" });
  const list = h("div", { id: "event-overrides" });
  const result = h("p", { id: "event-result", role: "status" });
  const allowed = can("operator");
  const field = (key, input) => h("label", {}, h("span", {}, t(key)), input);
  const zone = h("select", { id: "event-zone", required: true }, zones.map((z) => h("option", { value: z.id }, z.name)));
  const name = h("input", { id: "event-name", required: true, maxlength: 100, placeholder: "国庆灯光秀" });
  const scene = h("select", { id: "event-scene" },
    Array.from({ length: 16 }, (_, n) => h("option", { value: n, selected: n === 3 }, `${n} · ${sceneName(n)}`)));
  const brightness = h("input", { id: "event-brightness", type: "number", min: 0, max: 100, value: 100, required: true });
  const start = h("input", { id: "event-start", type: "datetime-local", value: local(Date.now()), required: true });
  const until = h("input", { id: "event-until", type: "datetime-local", value: local(Date.now() + 3 * HOUR), required: true });
  const reason = h("input", { id: "event-reason", required: true, maxlength: 500 });
  const submit = h("button", { type: "submit", id: "event-submit", disabled: !allowed }, t("ev.submit"));
  const form = h("form", { id: "event-form", class: "card form-grid", onsubmit: send },
    field("ev.zone", zone), field("ev.name", name), field("ev.scene", scene), field("ev.brightness", brightness),
    field("ev.start", start), field("ev.until", until), field("ev.reason", reason),
    h("div", { class: "form-actions" }, submit, allowed ? null : h("span", { class: "muted role-note" }, t("ev.role"))), result);
  if (!allowed) for (const el of form.querySelectorAll("input, select")) el.disabled = true;

  root.append(heading("ev.title"), h("p", { class: "muted" }, t("ev.intro")),
    h("div", { class: "events-layout" }, form, h("div", {}, h("h3", {}, t("ev.zones")), cards)),
    h("h3", {}, t("ev.active")), list);

  async function send(event) {
    event.preventDefault();
    const body = {
      targets: [`zone:${zone.value}`], kind: "event", event: name.value.trim(),
      scene: Number(scene.value), brightness: Number(brightness.value),
      start: withOffset(start.value), until: withOffset(until.value), reason: reason.value.trim(),
    };
    result.className = "";
    try {
      const created = await api("/overrides", { method: "POST", body });
      result.textContent = t("ev.done", { id: created?.id ?? "?" });
      result.className = "ok";
      toast(result.textContent);
      loadList(list);
    } catch (err) {
      result.textContent = isUnavailable(err) ? t("na") : `${err.status}: ${err.message}`;
      result.className = "error";
    }
  }

  drawZones(cards);
  loadList(list);
  const offs = [on("devices", () => drawZones(cards)), on("override", () => loadList(list))];
  return () => offs.forEach((off) => off());
}

function drawZones(box) {
  clear(box);
  for (const zone of store.inventory?.zones || []) {
    const members = zone.devices.map((id) => store.devices.get(id)).filter(Boolean);
    const lead = members[0];
    const scene = lead?.scene ?? null;
    box.append(h("div", { class: "zone-card", dataset: { zoneId: zone.id, scene: scene ?? "", state: lead ? deviceState(lead) : "unknown" } },
      h("strong", {}, zone.name),
      lead ? stateBadge(deviceState(lead)) : null,
      h("div", { class: "scene-now" }, sceneName(scene), lead?.level !== null && lead?.level !== undefined ? ` · ${lead.level} %` : "")));
  }
}

async function loadList(box) {
  let page;
  try {
    page = await api("/overrides", { query: { limit: 100 } });
  } catch (err) {
    clear(box).append(isUnavailable(err) ? notAvailable() : errorBox(err));
    return;
  }
  const now = Date.now();
  const active = (page.items || []).filter((o) => !o.ended_at && (!o.until || new Date(o.until).getTime() > now));
  if (!active.length) {
    clear(box).append(h("p", { class: "muted" }, t("ev.none")));
    return;
  }
  const end = async (o) => {
    try {
      await api(`/overrides/${o.id}`, { method: "DELETE" });
      toast(`${t("ev.ended")} #${o.id}`);
    } catch (err) {
      toast(`${err.status}: ${err.message}`, "error");
    }
    loadList(box);
  };
  clear(box).append(h("table", { class: "grid compact", id: "override-table" },
    h("thead", {}, h("tr", {}, ["f.id", "f.kind", "sch.target", "ev.name", "f.output", "ev.start", "ev.until", "ev.reason", ""].map((k) => h("th", {}, k ? t(k) : "")))),
    h("tbody", {}, active.map((o) => h("tr", { dataset: { overrideId: o.id, kind: o.kind } },
      h("td", { class: "mono" }, String(o.id)), h("td", {}, o.kind || ""), h("td", {}, (o.targets || []).join(", ")),
      h("td", {}, o.event || ""), h("td", {}, describe(o)), h("td", {}, fmtTime(o.start)), h("td", {}, fmtTime(o.until)),
      h("td", {}, o.reason || ""), h("td", {}, can("operator")
        ? h("button", { type: "button", class: "small", dataset: { action: "end", overrideId: o.id }, onclick: () => end(o) }, t("ev.end"))
        : null))))));
}

function describe(override) {
  const o = override.state && typeof override.state === "object" ? { ...override, ...override.state } : override;
  const parts = [];
  if (o.scene !== undefined && o.scene !== null) parts.push(sceneName(o.scene));
  if (o.brightness !== undefined && o.brightness !== null) parts.push(`${o.brightness} %`);
  if (o.on !== undefined && o.on !== null) parts.push(o.on ? t("sch.on") : t("sch.off"));
  if (o.level !== undefined && o.level !== null) parts.push(`${o.level} %`);
  for (const k of ["k1", "k2"]) if (o[k] !== undefined && o[k] !== null) parts.push(`${k.toUpperCase()} ${o[k] ? t("sch.on") : t("sch.off")}`);
  return parts.join(", ") || "–";
}

// datetime-local inputs hold site wall-clock time; the API wants ISO 8601 with the site's offset.
function local(ms) {
  const p = siteParts(new Date(ms));
  return `${p.date}T${String(p.hour).padStart(2, "0")}:${String(p.minute).padStart(2, "0")}`;
}

function withOffset(value) {
  const approx = new Date(`${value}:00Z`);
  return `${value}:00${siteOffset(approx)}`;
}
