// The site's "now" is the server's clock, not the browser's: the demo runs a simulated clock that
// starts at a chosen moment and runs faster than wall time, and a desk PC's clock may simply be wrong.
//
// The server states its time in every event of the stream ("ts") and in /kpi ("at"), to the second.
// From two such readings far enough apart the console learns how fast the server's clock runs;
// `/health` giving {"now", "clock_speed"} (if a later server does) is taken as exact.

import { api } from "./api.js";

const MIN_SPAN_MS = 3000; // browser time between two readings before their rate means anything
const MAX_SPAN_MS = 300000; // then the older reading is dropped, so a stale one cannot skew the rate

const clock = { anchor: null, last: null, speed: 1, exact: false };

function parse(value) {
  const ms = typeof value === "number" ? value : Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

// A moment the server stated (ISO text or epoch ms), received now; `speed` when the server says it.
export function noteServerTime(value, speed) {
  const server = parse(value);
  if (server === null) return;
  const sample = { server, local: performance.now() };
  if (typeof speed === "number" && speed > 0) {
    clock.speed = speed;
    clock.exact = true;
  }
  const anchor = clock.anchor;
  if (!anchor || server < anchor.server) {
    clock.anchor = sample; // the first reading, or the server's clock went back (a restart)
  } else if (!clock.exact) {
    const span = sample.local - anchor.local;
    if (span >= MIN_SPAN_MS) {
      const rate = (server - anchor.server) / span;
      // Readings are whole seconds: over a few seconds a 1x clock can look like 0.7x or 1.4x.
      clock.speed = rate > 1.5 ? rate : 1;
    }
    if (span > MAX_SPAN_MS && clock.last) clock.anchor = clock.last;
  }
  clock.last = sample;
}

// The server's time now, in epoch ms (the browser's until the server has said anything).
export function serverNow() {
  const last = clock.last;
  if (!last) return Date.now();
  return last.server + (performance.now() - last.local) * clock.speed;
}

export function clockSpeed() {
  return clock.speed;
}

// Ask the server what time it is (before an action whose times are relative to "now").
let healthTellsTime = true; // until a /health answer says otherwise

export async function syncClock() {
  if (healthTellsTime) {
    try {
      const health = await api("/health");
      if (health?.now) {
        noteServerTime(health.now, health.clock_speed);
        return serverNow();
      }
      healthTellsTime = false;
    } catch {
      /* fall through to /kpi */
    }
  }
  try {
    noteServerTime((await api("/kpi")).at);
  } catch {
    /* no fault detection running: keep the best guess */
  }
  return serverNow();
}
