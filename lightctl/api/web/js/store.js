// What the console knows about the district, kept current by the server's event stream.

import { api, fetchAll } from "./api.js";
import { noteServerTime } from "./clock.js";
import { debounce } from "./dom.js";

export const store = {
  me: null, // {name, role}
  inventory: null, // sites, roads, zones, gateways
  health: null,
  devices: new Map(), // id -> device as GET /devices returns it
  devicesLoaded: false,
};

const listeners = new Map(); // kind -> Set(fn)

export function on(kind, fn) {
  if (!listeners.has(kind)) listeners.set(kind, new Set());
  listeners.get(kind).add(fn);
  return () => listeners.get(kind).delete(fn);
}

function emit(kind, payload) {
  for (const fn of listeners.get(kind) || []) {
    try {
      fn(payload);
    } catch (err) {
      console.error(`listener for ${kind} failed`, err);
    }
  }
}

const ROLE_RANK = { viewer: 0, maintenance: 1, operator: 2, office: 3, admin: 4 };

export function can(role) {
  return store.me !== null && ROLE_RANK[store.me.role] >= ROLE_RANK[role];
}

export async function loadInventory() {
  store.inventory = await api("/inventory");
  return store.inventory;
}

// State changes heard while a full list is on its way, numbered: the list may be older than some of
// them (it was made before they were sent), so they are applied again, in order, once it lands.
let fetching = 0;
let heard = [];
let heardSeq = 0;

export async function loadDevices() {
  fetching += 1;
  const since = heardSeq;
  try {
    const items = await fetchAll("/devices");
    store.devices = new Map(items.map((d) => [d.id, d]));
    for (const [seq, change] of heard) if (seq > since) applyChange(change);
    store.devicesLoaded = true;
    emit("devices", null); // null: everything changed
    return store.devices;
  } finally {
    fetching -= 1;
    if (fetching === 0) heard = [];
  }
}

const LIVE_FIELDS = ["online", "on", "level", "k1", "k2", "scene"];

function applyChange(change) {
  const d = store.devices.get(change.id);
  if (!d) return false;
  for (const key of LIVE_FIELDS) if (key in change) d[key] = change[key];
  return true;
}

// Devices whose alarms changed: their open_alarms count (the map's red) is fetched again, one by one
// for a few, as the whole list for a burst (a feeder's worth of comm_loss is hundreds of events).
const alarmed = new Set();
const refreshAlarmed = debounce(async () => {
  const ids = [...alarmed];
  alarmed.clear();
  if (ids.length > 10) await loadDevices();
  else for (const id of ids) await refreshDevice(id);
}, 500);

export async function refreshDevice(id) {
  try {
    const d = await api(`/devices/${encodeURIComponent(id)}`);
    const known = store.devices.get(id);
    if (known) {
      for (const key of Object.keys(known)) if (key in d) known[key] = d[key];
      emit("devices", [id]);
    }
  } catch {
    /* the next full refresh catches up */
  }
}

// --- the event stream ----------------------------------------------------------------------------

let source = null;
let statusFn = () => {};

export function onLiveStatus(fn) {
  statusFn = fn;
}

export function connectEvents(onAuthLost) {
  disconnectEvents();
  statusFn("connecting");
  source = new EventSource("/api/v1/events"); // same origin: the session cookie goes along
  source.onopen = () => {
    statusFn("connected");
    // Whatever changed before the stream was (re)connected was not heard: the list is taken now,
    // after the server has started sending changes, and pages look again.
    loadDevices().catch(() => {});
    emit("connected", null);
  };
  source.onerror = async () => {
    if (source && source.readyState === EventSource.CLOSED) {
      statusFn("offline");
      try {
        await api("/session");
        setTimeout(() => connectEvents(onAuthLost), 3000);
      } catch {
        onAuthLost();
      }
    } else {
      statusFn("connecting"); // EventSource retries by itself
    }
  };
  source.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    handle(event);
  };
}

export function disconnectEvents() {
  if (source) source.close();
  source = null;
  statusFn("idle");
}

function handle(event) {
  if (event.ts) noteServerTime(event.ts);
  const data = event.data || {};
  switch (event.type) {
    case "state": {
      const ids = [];
      for (const change of data.devices || []) {
        if (fetching) heard.push([++heardSeq, change]);
        if (applyChange(change)) ids.push(change.id);
      }
      if (ids.length) emit("devices", ids);
      break;
    }
    case "alarm": { // {"event": "raised" | "acked" | ..., "alarm": {...as GET /alarms/{id}}, "children"}
      const device = data.alarm?.device;
      if (device && store.devices.has(device)) {
        alarmed.add(device);
        refreshAlarmed();
      }
      emit("alarm", data);
      break;
    }
    case "override": // {"id", "targets", "until"}: the list is fetched again
      emit("override", data);
      break;
    case "maintenance": // windows cover roads and gateways: simplest to take the list again
      loadDevices().catch(() => {});
      emit("maintenance", data);
      break;
    case "health":
      emit("health", data);
      break;
    case "resync":
      loadDevices().catch(() => {});
      emit("resync", data);
      break;
    default:
      break;
  }
}
