// The map: grid polygons are the map itself (no tiles needed); a tile layer only if configured.
import * as L from "/vendor/leaflet.js";
import { t } from "./i18n.js";

export const STATUS_COLOURS = { green: "#22c55e", yellow: "#facc15", red: "#ef4444", none: "#64748b" };

export class OpsMap {
  constructor(element, { tileUrl, tileAttribution, onGrid, onCheckpoint, onHouse }) {
    this.element = element;
    this.handlers = { onGrid, onCheckpoint, onHouse };
    this.map = L.map(element, { zoomControl: true, attributionControl: Boolean(tileUrl), preferCanvas: false, zoomSnap: 0.25 });
    if (tileUrl) L.tileLayer(tileUrl, { attribution: tileAttribution || "", maxZoom: 19 }).addTo(this.map);
    this.outlines = L.layerGroup().addTo(this.map);
    this.grids = L.layerGroup().addTo(this.map);
    this.houses = L.layerGroup().addTo(this.map);
    this.checkpoints = L.layerGroup().addTo(this.map);
    this.gridLayers = new Map();
    this.checkpointLayers = new Map();
    this.labels = L.layerGroup().addTo(this.map);
    this.map.on("zoomend", () => this.toggleLabels());
  }

  setRegions(features) {
    this.outlines.clearLayers();
    this.grids.clearLayers();
    this.labels.clearLayers();
    this.gridLayers.clear();
    const withGeometry = features.filter((f) => f.geometry);
    // A view first: Leaflet creates a layer's SVG element only once the map has one.
    if (withGeometry.length) this.map.fitBounds(L.geoJSON({ type: "FeatureCollection", features: withGeometry }).getBounds(), { padding: [16, 16] });
    else this.map.setView([22.55, 113.9], 12);
    this.toggleLabels(); // the first view fires no zoomend
    for (const f of withGeometry.filter((x) => x.properties.level === "street" || x.properties.level === "community")) {
      const street = f.properties.level === "street";
      L.geoJSON(f, {
        interactive: false,
        style: { color: street ? "#93c5fd" : "#cbd5e1", weight: street ? 2.6 : 1.4, opacity: street ? 0.9 : 0.55, fill: false, dashArray: street ? null : "4 4" },
      }).addTo(this.outlines);
      if (street) {
        const center = L.geoJSON(f).getBounds().getCenter();
        L.marker(center, { interactive: false, icon: L.divIcon({ className: "region-label", html: `<span>${f.properties.name}</span>` }) }).addTo(this.labels);
      }
    }
    const grids = withGeometry.filter((f) => f.properties.level === "grid");
    for (const f of grids) {
      const layer = L.geoJSON(f, { style: this.gridStyle("none"), className: "grid-poly" });
      layer.on("click", () => this.handlers.onGrid(f.properties));
      layer.on("mouseover", (e) => e.layer.setStyle({ weight: 2.5, color: "#f8fafc" }));
      layer.on("mouseout", (e) => e.layer.setStyle({ weight: 1, color: "#0f172a" }));
      layer.bindTooltip(`${f.properties.name}<br><small>${f.properties.code}</small>`, { sticky: true, className: "tip" });
      layer.addTo(this.grids);
      for (const path of layer.getLayers()) {
        const el = path.getElement();
        if (el) { el.dataset.code = f.properties.code; el.dataset.status = "none"; el.classList.add("grid-poly"); }
      }
      this.gridLayers.set(f.properties.code, layer);
    }
    this.element.dataset.gridCount = String(grids.length);
    this.toggleLabels();
  }

  gridStyle(status) {
    return { color: "#0f172a", weight: 1, fillColor: STATUS_COLOURS[status], fillOpacity: status === "none" ? 0.18 : 0.34 };
  }

  setGridStates(aggregates) {
    const byCode = new Map(aggregates.map((a) => [a.code, a]));
    for (const [code, layer] of this.gridLayers) {
      const a = byCode.get(code);
      const status = !a || !a.total ? "none" : a.red ? "red" : a.yellow ? "yellow" : "green";
      layer.setStyle(this.gridStyle(status));
      for (const path of layer.getLayers()) if (path.getElement()) path.getElement().dataset.status = status;
    }
  }

  setCheckpoints(features) {
    this.checkpoints.clearLayers();
    this.checkpointLayers.clear();
    for (const f of features) {
      const [lon, lat] = f.geometry.coordinates;
      const status = f.properties.status;
      const marker = L.circleMarker([lat, lon], {
        radius: status === "red" ? 7.5 : 6,
        color: "#0b1220",
        weight: 1.5,
        fillColor: STATUS_COLOURS[status],
        fillOpacity: 1,
        className: `checkpoint cp-${status}`,
      });
      marker.on("click", () => this.handlers.onCheckpoint(f));
      marker.bindTooltip(`${f.properties.name} · ${t(`status.${status}`)}`, { className: "tip" });
      marker.addTo(this.checkpoints);
      const el = marker.getElement();
      if (el) { el.dataset.checkpointId = f.id; el.dataset.status = status; }
      this.checkpointLayers.set(f.id, marker);
    }
    this.element.dataset.checkpointCount = String(features.length);
  }

  setHouses(houses) {
    this.houses.clearLayers();
    for (const h of houses) {
      if (!h.location) continue;
      const crowded = h.overcrowded_units && h.overcrowded_units.length > 0;
      const marker = L.marker([h.location[1], h.location[0]], {
        icon: L.divIcon({ className: "", html: `<span class="house${crowded ? " crowded" : ""}" data-house-id="${h.id}">${crowded ? "!" : ""}</span>`, iconSize: [14, 14] }),
        zIndexOffset: crowded ? 500 : 0,
      });
      marker.on("click", () => this.handlers.onHouse(h));
      marker.bindTooltip(`${h.address}${crowded ? ` · ${t("legend.overcrowded")}` : ""}`, { className: "tip" });
      marker.addTo(this.houses);
    }
  }

  focus(features) {
    const shapes = features.filter((f) => f.geometry);
    if (shapes.length) this.map.fitBounds(L.geoJSON({ type: "FeatureCollection", features: shapes }).getBounds(), { padding: [16, 16] });
  }

  highlight(code) {
    for (const [c, layer] of this.gridLayers) {
      for (const path of layer.getLayers()) path.getElement()?.classList.toggle("selected", c === code);
    }
  }

  toggleLabels() {
    const el = this.element;
    el.classList.toggle("zoomed-out", this.map.getZoom() < 13);
    // Over a whole district ordinary rental houses would hide the checkpoints.
    el.classList.toggle("houses-overcrowded-only", this.map.getZoom() < 14.5);
  }

  resize() { this.map.invalidateSize(); }
}
