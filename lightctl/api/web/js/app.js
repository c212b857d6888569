// The console's entry point: login, the header, and a hash router over the pages.

import { api, ApiError, whenUnauthorized } from "./api.js";
import { syncClock } from "./clock.js";
import { clear, debounce, errorBox, setSiteZone, siteParts } from "./dom.js";
import { applyStatic, getLang, setLang, t } from "./i18n.js";
import { connectEvents, disconnectEvents, loadDevices, loadInventory, on, onLiveStatus, store } from "./store.js";
import * as overview from "./pages/overview.js";
import * as map from "./pages/map.js";
import * as devices from "./pages/devices.js";
import * as schedule from "./pages/schedule.js";
import * as alarms from "./pages/alarms.js";
import * as events from "./pages/events.js";

const PAGES = { overview, map, devices, schedule, alarms, events };
const $ = (id) => document.getElementById(id);

let current = null; // {name, cleanup}

async function boot() {
  applyStatic();
  $("lang-toggle").addEventListener("click", () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    renderWho();
    if (current) show(current.name, true);
  });
  $("logout").addEventListener("click", logout);
  $("login-form").addEventListener("submit", login);
  window.addEventListener("hashchange", route);
  onLiveStatus((state) => {
    $("live-status").dataset.state = state;
    $("live-label").textContent = t(`live.${state}`);
  });
  whenUnauthorized(() => showLogin());
  const recount = debounce(countOpenAlarms);
  on("alarm", recount);
  on("connected", recount);
  tick();
  setInterval(tick, 1000); // the demo's clock may run 60 times faster than this one
  try {
    store.me = await api("/session");
  } catch {
    showLogin();
    return;
  }
  await start();
}

function tick() {
  const now = siteParts();
  const text = `${now.date} ${String(now.hour).padStart(2, "0")}:${String(now.minute).padStart(2, "0")}`;
  if ($("clock").textContent !== text) $("clock").textContent = text;
}

async function login(event) {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  const token = $("login-token").value.trim();
  try {
    store.me = await api("/session", { method: "POST", body: { token } });
  } catch (err) {
    error.textContent = err instanceof ApiError && err.status === 429 ? t("login.throttled") : t("login.failed");
    error.hidden = false;
    return;
  } finally {
    $("login-token").value = ""; // the token is not kept anywhere once the session exists
  }
  await start();
}

async function logout() {
  try {
    await api("/session", { method: "DELETE" });
  } catch {
    /* already gone */
  }
  store.me = null;
  showLogin();
}

function showLogin() {
  disconnectEvents();
  if (current?.cleanup) current.cleanup();
  current = null;
  store.me = null;
  $("page").hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("whoami").hidden = true;
  $("login-view").hidden = false;
  document.body.dataset.view = "login";
  $("login-token").focus();
}

async function start() {
  $("login-view").hidden = true;
  $("logout").hidden = false;
  renderWho();
  document.body.dataset.view = "app";
  try {
    // Every page names roads and zones: nothing is shown before the inventory is here.
    const inventory = await loadInventory();
    setSiteZone(inventory.site.timezone);
    $("site-name").textContent = inventory.site.name || inventory.site.id;
    tick();
  } catch (err) {
    $("page").hidden = false;
    clear($("page")).append(errorBox(err));
    return;
  }
  $("nav").hidden = false;
  connectEvents(() => showLogin()); // which loads the devices once the stream is open
  route();
  await Promise.all([syncClock().then(tick), countOpenAlarms()]);
  // Without the stream (a proxy that refuses it), the list is still loaded.
  setTimeout(() => { if (store.me && !store.devicesLoaded) loadDevices().catch((err) => console.error(err)); }, 3000);
  // A safety net under the event stream: alarm counts and maintenance flags change without a state event.
  clearInterval(start.timer);
  start.timer = setInterval(() => {
    if (!store.me) return;
    loadDevices().catch(() => {});
    syncClock().catch(() => {});
  }, 60000);
}

// The number on the Alarms tab: open (not yet acknowledged) alarms.
async function countOpenAlarms() {
  const count = $("nav-alarm-count");
  try {
    const page = await api("/alarms", { query: { state: "open", limit: 1 } });
    count.textContent = String(page.total);
    count.hidden = page.total === 0;
  } catch {
    count.hidden = true; // no fault detection here, or logged out
  }
}

function renderWho() {
  if (!store.me) return;
  const who = $("whoami");
  who.hidden = false;
  who.dataset.role = store.me.role;
  who.textContent = `${store.me.name} · ${t(`role.${store.me.role}`)}`;
}

function route() {
  if (!store.me || !store.inventory) return;
  const name = (window.location.hash.replace(/^#\/?/, "").split("?")[0] || "overview");
  show(PAGES[name] ? name : "overview");
}

function show(name, force = false) {
  if (current?.name === name && !force) return;
  if (current?.cleanup) current.cleanup();
  const page = $("page");
  clear(page);
  page.hidden = false;
  page.dataset.page = name;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === name);
  }
  let cleanup = null;
  try {
    cleanup = PAGES[name].render(page);
  } catch (err) {
    console.error(err);
    page.append(errorBox(err));
  }
  current = { name, cleanup };
  applyStatic(page);
}

boot();
