// Alarms: filter by state and severity, acknowledge, resolve with a note, assign to a crew member.

import { api, isUnavailable } from "../api.js";
import { clear, debounce, errorBox, errorText, fmtTime, h, heading, notAvailable, put, toast } from "../dom.js";
import { t } from "../i18n.js";
import { can, on, store } from "../store.js";

const PAGE_SIZE = 50;
const STATES = ["open", "acked", "resolved"];
const SEVERITIES = ["critical", "major", "minor"];
export const ALARM_COLUMNS = ["al.severity", "al.type", "al.device", "al.state", "al.first", "al.last", "al.assignee"];
const TYPES = [
  "lamp_failure", "control_gear_failure", "day_burner", "relay_failure", "dim_mismatch", "cycling", "voltage_high",
  "voltage_low", "power_factor_low", "over_temperature", "leakage", "door_open", "breaker_tripped", "pole_tilt",
  "supply_loss", "cable_theft_suspected", "comm_loss", "command_failed", "energy_anomaly", "calendar_data_missing",
];
const filters = { state: "open", severity: "", type: "", offset: 0 };

// An alarm as GET /alarms returns it: {id, type, severity, device, device_name, state, first_seen,
// last_seen, parent, assignee, note, overdue, due, held, detail}.
export function alarmRow(a, withActions, act) {
  const name = a.device_name || store.devices.get(a.device)?.name || a.device;
  const cells = [
    h("td", {}, h("span", { class: `badge sev-${a.severity}` }, t(`sev.${a.severity}`))),
    h("td", { title: a.detail || null }, t(`at.${a.type}`), a.parent ? h("span", { class: "muted" }, ` ↳ #${a.parent}`) : null),
    h("td", { title: a.device }, name),
    h("td", {}, h("span", { class: `badge al-${a.state}` }, t(`al.state.${a.state}`)),
      a.overdue ? h("span", { class: "badge overdue", title: a.due ? `${t("al.due")} ${fmtTime(a.due)}` : null }, t("al.overdue")) : null,
      a.held ? h("span", { class: "badge held", title: t("al.held.long") }, t("al.held")) : null),
    h("td", {}, fmtTime(a.first_seen)), h("td", {}, fmtTime(a.last_seen)),
    h("td", {}, a.assignee || "–"),
  ];
  if (withActions) {
    const allowed = can("maintenance");
    const button = (action, label, disabled) => h("button", {
      type: "button", class: "small", dataset: { action, alarmId: a.id }, disabled: !allowed || disabled,
      onclick: () => act(action, a),
    }, t(label));
    cells.push(h("td", { class: "note" }, a.note || ""),
      h("td", { class: "actions" },
        button("ack", "al.ack", a.state !== "open"),
        button("resolve", "al.resolve", a.state === "resolved"),
        button("assign", "al.assign", a.state === "resolved")));
  }
  return h("tr", { dataset: { alarmId: a.id, alarmState: a.state, severity: a.severity } }, cells);
}

export function render(root) {
  const tbody = h("tbody");
  const message = h("div");
  const range = h("span", { class: "muted", id: "alarms-range" });
  const select = (id, key, values, labelPrefix) => h("label", {}, h("span", {}, t(`al.${key}`)),
    h("select", { id, onchange: (e) => { filters[key] = e.target.value; filters.offset = 0; load(); } },
      h("option", { value: "" }, t("all")),
      values.map((v) => h("option", { value: v, selected: filters[key] === v }, t(`${labelPrefix}${v}`)))));
  const prev = h("button", { type: "button", class: "ghost", id: "alarms-prev", onclick: () => page(-1) }, t("dev.prev"));
  const next = h("button", { type: "button", class: "ghost", id: "alarms-next", onclick: () => page(1) }, t("dev.next"));
  const dialog = actionDialog(() => load());
  put(root,
    heading("nav.alarms"),
    h("div", { class: "filters" },
      select("alarms-state", "state", STATES, "al.state."),
      select("alarms-severity", "severity", SEVERITIES, "sev."),
      select("alarms-type", "type", TYPES, "at."),
      h("span", { class: "spacer" }), range, prev, next),
    can("maintenance") ? null : h("p", { class: "muted role-note" }, t("al.role")),
    h("div", { class: "table-wrap" },
      h("table", { id: "alarms-table", class: "grid" },
        h("thead", {}, h("tr", {}, [...ALARM_COLUMNS, "al.note", "al.actions"].map((k) => h("th", {}, t(k))))),
        tbody),
      message),
    dialog.element,
  );

  let loads = 0; // answers to superseded requests are dropped

  async function load() {
    const ticket = ++loads;
    let result;
    try {
      const { state, severity, type, offset } = filters;
      result = await api("/alarms", { query: { state, severity, type, limit: PAGE_SIZE, offset } });
    } catch (err) {
      if (ticket !== loads) return;
      clear(tbody);
      clear(message).append(isUnavailable(err) ? notAvailable() : errorBox(err));
      return;
    }
    if (ticket !== loads) return;
    clear(message);
    clear(tbody).append(...result.items.map((a) => alarmRow(a, true, dialog.open)));
    if (!result.items.length) message.append(h("p", { class: "muted empty" }, t("al.empty")));
    range.textContent = t("dev.range", { from: result.total ? result.offset + 1 : 0, to: result.offset + result.items.length, total: result.total });
    range.dataset.total = String(result.total);
    prev.disabled = result.offset === 0;
    next.disabled = result.offset + result.items.length >= result.total;
  }

  function page(step) {
    filters.offset = Math.max(0, filters.offset + step * PAGE_SIZE);
    load();
  }

  load();
  const reload = debounce(load);
  const offs = [on("alarm", reload), on("connected", reload)];
  return () => { offs.forEach((off) => off()); reload.cancel(); };
}

// One dialog for the three actions: a note for ack / resolve, a name for assign.
function actionDialog(done) {
  const title = h("h3");
  const label = h("label", { for: "alarm-input" });
  const input = h("textarea", { id: "alarm-input", rows: 3, maxlength: 4000 });
  const error = h("p", { class: "error", hidden: true });
  let current = null;
  const element = h("dialog", { id: "alarm-dialog" },
    h("form", { method: "dialog", onsubmit: submit }, title, label, input, error,
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "ghost", onclick: () => element.close() }, t("al.cancel")),
        h("button", { type: "submit", id: "alarm-submit" }, t("al.submit")))));

  function open(action, alarm) {
    current = { action, alarm };
    title.textContent = `${t(`al.${action}`)} · ${t(`at.${alarm.type}`)} #${alarm.id}`;
    label.textContent = t(action === "assign" ? "al.assignee" : "al.note");
    input.value = action === "assign" ? alarm.assignee || "" : "";
    input.maxLength = action === "assign" ? 100 : 4000;
    element.dataset.action = action;
    error.hidden = true;
    element.showModal();
    input.focus();
  }

  async function submit(event) {
    event.preventDefault();
    const { action, alarm } = current;
    const text = input.value.trim();
    if (action === "resolve" && !text) {
      error.textContent = t("al.note.required");
      error.hidden = false;
      return;
    }
    const body = action === "assign" ? { assignee: text } : text ? { note: text } : {};
    try {
      await api(`/alarms/${alarm.id}/${action}`, { method: "POST", body });
    } catch (err) {
      error.textContent = isUnavailable(err) ? t("na") : errorText(err);
      error.hidden = false;
      return;
    }
    element.close();
    toast(`${t(`al.${action}`)} #${alarm.id} ✓`);
    done();
  }

  return { element, open };
}
