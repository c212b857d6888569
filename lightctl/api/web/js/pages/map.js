// Every lamp, group and facade zone placed by its coordinates: no tiles, just roads and markers.

import { h, heading, s, STATES, clear, deviceState, stateBadge } from "../dom.js";
import { t } from "../i18n.js";
import { on, store } from "../store.js";
import { deviceDetails } from "./device-panel.js";

const MARGIN = 28;

export function render(root) {
  const svg = s("svg", { id: "map-svg", role: "img", "aria-label": t("nav.map") });
  const tooltip = h("div", { id: "map-tooltip", class: "tooltip", hidden: true });
  const legend = h("ul", { id: "map-legend", class: "legend" });
  const panel = h("div", { id: "device-panel", class: "device-panel", hidden: true });
  const area = h("div", { id: "map-area", class: "map-area" }, svg, tooltip,
    h("div", { class: "map-tools" },
      h("button", { type: "button", id: "map-fit", class: "ghost", title: t("map.fit"), onclick: () => { fit(); draw(); } }, t("map.fit")),
      h("button", { type: "button", id: "map-zoom-in", class: "ghost", title: t("map.zoomin"), onclick: () => zoomBy(1.5) }, "+"),
      h("button", { type: "button", id: "map-zoom-out", class: "ghost", title: t("map.zoomout"), onclick: () => zoomBy(1 / 1.5) }, "−")));
  root.append(
    heading("nav.map", h("span", { class: "muted hint" }, t("map.hint"))),
    h("div", { class: "map-layout" }, area,
      h("aside", { class: "map-side" }, h("h3", {}, t("map.legend")), legend, panel)),
  );

  const world = projection();
  const view = { k: 1, x: 0, y: 0 };
  const size = { w: 0, h: 0 };
  const layers = {
    roads: s("g", { class: "roads" }), cabinets: s("g", { class: "cabinets" }),
    markers: s("g", { id: "map-markers", class: "markers" }), labels: s("g", { class: "labels" }),
  };
  svg.append(layers.roads, layers.cabinets, layers.markers, layers.labels);
  const markers = new Map(); // device id -> svg element
  let fitted = false;

  function build() {
    clear(layers.markers);
    clear(layers.labels);
    markers.clear();
    for (const road of store.inventory?.roads || []) {
      layers.roads.append(s("polyline", { class: "road", dataset: { roadId: road.id } }));
      layers.labels.append(s("text", { class: "road-label", dataset: { roadLabel: road.id } }, road.name));
    }
    for (const gw of [...(store.inventory?.gateways || []), ...(store.inventory?.concentrators || [])]) {
      layers.cabinets.append(s("rect", { class: "cabinet", width: 8, height: 8, dataset: { cabinetId: gw.id } },
        s("title", {}, `${gw.name} (${gw.id})`)));
    }
    // Lamps first, then groups, facades on top: the big markers must not hide the small ones' clicks.
    const order = { lamp: 0, group: 1, facade: 2 };
    const devices = [...store.devices.values()].sort((a, b) => order[a.kind] - order[b.kind]);
    for (const d of devices) {
      const attrs = { class: `marker ${d.kind}`, dataset: { deviceId: d.id, kind: d.kind, state: deviceState(d) } };
      const el = d.kind === "lamp" ? s("circle", { ...attrs, r: 3.2 })
        : d.kind === "group" ? s("rect", { ...attrs, width: 6, height: 6 })
          : s("circle", { ...attrs, r: 9 });
      markers.set(d.id, el);
      layers.markers.append(el);
      if (d.kind === "facade") layers.labels.append(s("text", { class: "zone-label", dataset: { zoneLabel: d.id } }, d.name));
    }
    svg.dataset.markers = String(markers.size);
    updateLegend();
  }

  function fit() {
    const b = world.bounds;
    if (!size.w || !size.h || !b) return;
    const k = Math.min((size.w - 2 * MARGIN) / Math.max(b.w, 1e-9), (size.h - 2 * MARGIN) / Math.max(b.h, 1e-9));
    view.k = k;
    view.x = (size.w - b.w * k) / 2 - b.x0 * k;
    view.y = (size.h - b.h * k) / 2 - b.y0 * k;
  }

  const px = (lat, lon) => {
    const [x, y] = world.project(lat, lon);
    return [x * view.k + view.x, y * view.k + view.y];
  };

  function draw() {
    for (const road of store.inventory?.roads || []) {
      const pts = road.path.map(([lat, lon]) => px(lat, lon));
      layers.roads.querySelector(`[data-road-id="${road.id}"]`)?.setAttribute("points", pts.map((p) => p.join(",")).join(" "));
      const mid = pts[Math.floor(pts.length / 2)] || [0, 0];
      const label = layers.labels.querySelector(`[data-road-label="${road.id}"]`);
      label?.setAttribute("x", mid[0] + 6);
      label?.setAttribute("y", mid[1] - 8);
    }
    for (const gw of [...(store.inventory?.gateways || []), ...(store.inventory?.concentrators || [])]) {
      const [x, y] = px(gw.lat, gw.lon);
      const el = layers.cabinets.querySelector(`[data-cabinet-id="${gw.id}"]`);
      el?.setAttribute("x", x - 4);
      el?.setAttribute("y", y - 4);
    }
    for (const [id, el] of markers) {
      const d = store.devices.get(id);
      const [x, y] = px(d.lat, d.lon);
      if (el.tagName === "rect") {
        el.setAttribute("x", x - 3);
        el.setAttribute("y", y - 3);
      } else {
        el.setAttribute("cx", x);
        el.setAttribute("cy", y);
      }
      if (d.kind === "facade") {
        const label = layers.labels.querySelector(`[data-zone-label="${id}"]`);
        label?.setAttribute("x", x + 12);
        label?.setAttribute("y", y + 4);
      }
    }
  }

  function updateLegend() {
    const counts = Object.fromEntries(STATES.map((st) => [st, 0]));
    for (const el of markers.values()) counts[el.dataset.state] += 1;
    clear(legend);
    for (const st of STATES) {
      const hidden = svg.classList.contains(`hide-${st}`);
      legend.append(h("li", {
        dataset: { legendState: st }, class: hidden ? "off" : "", title: t(`state.${st}`),
        onclick: () => { svg.classList.toggle(`hide-${st}`); updateLegend(); },
      }, h("span", { class: `swatch state-${st}` }), h("span", { class: "label" }, t(`state.${st}`)),
      h("span", { class: "count", dataset: { count: st } }, String(counts[st]))));
    }
    legend.append(
      h("li", { class: "static" }, h("span", { class: "swatch shape-lamp" }), h("span", { class: "label" }, t("kind.lamp"))),
      h("li", { class: "static" }, h("span", { class: "swatch shape-group" }), h("span", { class: "label" }, t("kind.group"))),
      h("li", { class: "static" }, h("span", { class: "swatch shape-facade" }), h("span", { class: "label" }, t("kind.facade"))),
      h("li", { class: "static" }, h("span", { class: "swatch shape-cabinet" }), h("span", { class: "label" }, t("map.cabinet"))),
      h("li", { class: "static" }, h("span", { class: "swatch shape-road" }), h("span", { class: "label" }, t("map.roads"))),
    );
  }

  function zoomBy(factor, cx = size.w / 2, cy = size.h / 2) {
    view.x = cx - (cx - view.x) * factor;
    view.y = cy - (cy - view.y) * factor;
    view.k *= factor;
    draw();
  }

  // Pointer: wheel zoom, drag pan, hover tooltip, click details.
  let drag = null;
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomBy(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  svg.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; });
  svg.addEventListener("pointermove", (e) => {
    if (drag && (e.buttons & 1)) {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      view.x += dx; view.y += dy;
      drag.x = e.clientX; drag.y = e.clientY;
      if (drag.moved) draw();
      return;
    }
    const id = e.target?.dataset?.deviceId;
    if (!id) { tooltip.hidden = true; return; }
    const d = store.devices.get(id);
    const r = area.getBoundingClientRect();
    clear(tooltip).append(h("strong", {}, d.name), h("div", { class: "muted" }, `${d.id} · ${t(`kind.${d.kind}`)}`),
      stateBadge(deviceState(d)));
    tooltip.style.left = `${e.clientX - r.left + 14}px`;
    tooltip.style.top = `${e.clientY - r.top + 10}px`;
    tooltip.hidden = false;
  });
  svg.addEventListener("pointerleave", () => { tooltip.hidden = true; drag = null; });
  svg.addEventListener("pointerup", (e) => {
    const moved = drag?.moved;
    drag = null;
    if (moved) return;
    const id = e.target?.dataset?.deviceId;
    for (const el of layers.markers.querySelectorAll(".selected")) el.classList.remove("selected");
    if (!id) { panel.hidden = true; return; }
    markers.get(id)?.classList.add("selected");
    panel.hidden = false;
    deviceDetails(panel, id, () => { panel.hidden = true; markers.get(id)?.classList.remove("selected"); });
  });

  const resize = new ResizeObserver(() => {
    const r = area.getBoundingClientRect();
    size.w = r.width; size.h = r.height;
    svg.setAttribute("width", size.w);
    svg.setAttribute("height", size.h);
    if (!fitted && markers.size) { fit(); fitted = true; }
    draw();
  });
  resize.observe(area);

  const rebuild = () => {
    Object.assign(world, projection());
    build();
    if (!fitted && size.w) { fit(); fitted = true; }
    draw();
  };
  if (store.devicesLoaded) rebuild();
  const off = on("devices", (ids) => {
    if (ids === null || markers.size !== store.devices.size) { rebuild(); return; }
    for (const id of ids) {
      const el = markers.get(id);
      const d = store.devices.get(id);
      if (el && d) el.dataset.state = deviceState(d);
    }
    updateLegend();
  });
  return () => { off(); resize.disconnect(); };
}

// Equirectangular, scaled by cos(latitude): at a district's size the error is far below a marker.
function projection() {
  const points = [];
  for (const d of store.devices.values()) points.push([d.lat, d.lon]);
  for (const road of store.inventory?.roads || []) points.push(...road.path);
  for (const gw of store.inventory?.gateways || []) points.push([gw.lat, gw.lon]);
  const lat0 = points.length ? points.reduce((a, p) => a + p[0], 0) / points.length : 0;
  const kx = Math.cos((lat0 * Math.PI) / 180);
  const project = (lat, lon) => [lon * kx, -lat];
  if (!points.length) return { project, bounds: null };
  const xy = points.map(([lat, lon]) => project(lat, lon));
  const xs = xy.map((p) => p[0]), ys = xy.map((p) => p[1]);
  const x0 = Math.min(...xs), y0 = Math.min(...ys);
  return { project, bounds: { x0, y0, w: Math.max(...xs) - x0, h: Math.max(...ys) - y0 } };
}
