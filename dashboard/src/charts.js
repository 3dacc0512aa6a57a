// The analysis charts (Apache ECharts, canvas renderer: works in headless Chromium without a GPU).
import * as echarts from "/vendor/echarts.js";
import { t } from "./i18n.js";

const TEXT = "#cbd5e1";
const AXIS = "#334155";
const PALETTE = ["#38bdf8", "#f97316", "#22c55e", "#facc15", "#ef4444", "#a78bfa"];
const instances = new Map();

function chart(id) {
  if (!instances.has(id)) {
    const el = document.getElementById(id);
    instances.set(id, echarts.init(el, null, { renderer: "canvas" }));
  }
  return instances.get(id);
}

function base() {
  return {
    color: PALETTE,
    textStyle: { color: TEXT, fontFamily: "inherit" },
    grid: { left: 48, right: 20, top: 36, bottom: 56, containLabel: true },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, backgroundColor: "#0f172a", borderColor: "#334155", textStyle: { color: "#e2e8f0" } },
    legend: { top: 0, textStyle: { color: TEXT }, itemWidth: 12, itemHeight: 8 },
  };
}

const category = (data, rotate = 0) => ({
  type: "category", data, axisLine: { lineStyle: { color: AXIS } },
  axisLabel: { color: TEXT, rotate, interval: 0, fontSize: 11, overflow: "truncate", width: 90 },
});
const value = (extra = {}) => ({ type: "value", splitLine: { lineStyle: { color: "#1e293b" } }, axisLabel: { color: TEXT }, ...extra });
const percent = (extra = {}) => value({ max: 100, axisLabel: { color: TEXT, formatter: "{value}%" }, ...extra });

function render(id, option, points) {
  const el = document.getElementById(id);
  el.dataset.points = String(points);
  const c = chart(id);
  if (!points) {
    c.setOption({ title: { text: t("chart.noData"), left: "center", top: "middle", textStyle: { color: "#64748b", fontSize: 14, fontWeight: "normal" } }, xAxis: [], yAxis: [], series: [] }, true);
    return;
  }
  c.setOption({ ...base(), ...option }, true);
}

const pct = (x) => (x === null || x === undefined ? null : Math.round(x * 1000) / 10);

/** Open hazards by venue type × severity, summed over the rows of /map/aggregates. */
export function hazardsByType(aggregates, venueTypes) {
  const counts = new Map();
  for (const row of aggregates) for (const h of row.open_hazards_by_type) {
    const entry = counts.get(h.venue_type) || { general: 0, major: 0 };
    entry[h.severity] = (entry[h.severity] || 0) + h.count;
    counts.set(h.venue_type, entry);
  }
  const types = [...counts.keys()].sort((a, b) => (counts.get(b).general + counts.get(b).major) - (counts.get(a).general + counts.get(a).major));
  const names = types.map((code) => venueTypes.get(code) || code);
  render("chart-hazards", {
    xAxis: category(names, names.length > 5 ? 30 : 0), yAxis: value({ minInterval: 1 }),
    series: [
      { name: t("series.general"), type: "bar", stack: "s", data: types.map((x) => counts.get(x).general), itemStyle: { color: "#f59e0b" } },
      { name: t("series.major"), type: "bar", stack: "s", data: types.map((x) => counts.get(x).major), itemStyle: { color: "#ef4444" }, barMaxWidth: 36 },
    ],
  }, types.length);
}

/** Checkpoints per grid by colour, and the missed rate; the grids with the most misses first. */
export function missedByGrid(aggregates, names) {
  const rows = aggregates.filter((a) => a.total > 0)
    .sort((a, b) => b.missed_rate - a.missed_rate || b.red - a.red || b.total - a.total).slice(0, 15);
  render("chart-missed", {
    xAxis: category(rows.map((r) => names.get(r.code) || r.code), 35),
    yAxis: [value({ minInterval: 1 }), percent({ splitLine: { show: false } })],
    series: [
      { name: t("status.green"), type: "bar", stack: "s", barMaxWidth: 22, data: rows.map((r) => r.green), itemStyle: { color: "#22c55e" } },
      { name: t("status.yellow"), type: "bar", stack: "s", data: rows.map((r) => r.yellow), itemStyle: { color: "#facc15" } },
      { name: t("status.red"), type: "bar", stack: "s", data: rows.map((r) => r.red), itemStyle: { color: "#ef4444" } },
      { name: t("series.missedRate"), type: "line", yAxisIndex: 1, symbolSize: 6, data: rows.map((r) => pct(r.missed_rate)), itemStyle: { color: "#e2e8f0" }, tooltip: { valueFormatter: (v) => `${v}%` } },
    ],
  }, rows.length);
}

export function closureByCommunity(rows, names) {
  const shown = rows.filter((r) => r.code && (r.hazards_due || r.hazards_reported));
  render("chart-closure", {
    xAxis: category(shown.map((r) => names.get(r.code) || r.code), shown.length > 4 ? 30 : 0),
    yAxis: [value({ minInterval: 1, name: t("series.reported"), nameTextStyle: { color: TEXT } }), percent({ splitLine: { show: false } })],
    series: [
      { name: t("series.reported"), type: "bar", barMaxWidth: 22, data: shown.map((r) => r.hazards_reported), itemStyle: { color: "#38bdf8" } },
      { name: t("series.onTimeClosure"), type: "line", yAxisIndex: 1, connectNulls: true, symbolSize: 7, data: shown.map((r) => pct(r.on_time_closure_rate)), itemStyle: { color: "#22c55e" }, tooltip: { valueFormatter: (v) => (v === null || v === undefined ? "–" : `${v}%`) } },
      { name: t("series.rework"), type: "line", yAxisIndex: 1, connectNulls: true, symbolSize: 7, data: shown.map((r) => pct(r.rework_rate)), itemStyle: { color: "#f97316" }, tooltip: { valueFormatter: (v) => (v === null || v === undefined ? "–" : `${v}%`) } },
    ],
  }, shown.length);
}

/** Ranked by on-time share of what was due (on time ÷ (inspected + missed)), then hazards found. */
export function inspectorRanking(rows) {
  const scored = rows.map((r) => {
    const due = r.inspected + r.missed;
    return { ...r, score: due ? r.on_time / due : 0 };
  }).sort((a, b) => a.score - b.score || a.hazards_found - b.hazards_found).slice(-12);
  render("chart-inspectors", {
    grid: { left: 16, right: 24, top: 36, bottom: 16, containLabel: true },
    xAxis: value({ minInterval: 1 }),
    yAxis: { ...category(scored.map((r) => `${r.inspector}  ${Math.round(r.score * 100)}%`)), axisLabel: { color: TEXT, fontSize: 11 } },
    series: [
      { name: t("series.onTime"), type: "bar", stack: "s", data: scored.map((r) => r.on_time), itemStyle: { color: "#22c55e" }, barMaxWidth: 16 },
      { name: t("series.late"), type: "bar", stack: "s", data: scored.map((r) => r.late), itemStyle: { color: "#facc15" } },
      { name: t("series.missed"), type: "bar", stack: "s", data: scored.map((r) => r.missed), itemStyle: { color: "#ef4444" } },
    ],
  }, scored.length);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} ${t("unit.hours")}` : `${Math.round(seconds / 60)} ${t("unit.minutes")}`;
}

export function departmentSla(rows) {
  const shown = rows.filter((r) => r.evaluation && r.evaluation.received > 0);
  render("chart-departments", {
    tooltip: {
      ...base().tooltip,
      formatter: (items) => {
        const r = shown[items[0].dataIndex];
        const e = r.evaluation;
        return `<b>${r.name}</b><br>${items.map((i) => `${i.marker}${i.seriesName}: ${i.value}%`).join("<br>")}`
          + `<br>${t("series.medianAck")}: ${duration(e.time_to_ack_seconds.median)}`
          + `<br>${t("series.medianFeedback")}: ${duration(e.time_to_feedback_seconds.median)}`;
      },
    },
    xAxis: category(shown.map((r) => r.name), shown.length > 4 ? 30 : 0), yAxis: percent(),
    series: [
      { name: t("series.ackSla"), type: "bar", barMaxWidth: 24, data: shown.map((r) => pct(r.evaluation.acknowledged_within_sla / r.evaluation.received)), itemStyle: { color: "#38bdf8" } },
      { name: t("series.feedbackSla"), type: "bar", barMaxWidth: 24, data: shown.map((r) => pct(r.evaluation.fed_back_within_sla / r.evaluation.received)), itemStyle: { color: "#a78bfa" } },
    ],
  }, shown.length);
}

export function staffing(report, names) {
  // Grids with floating residents, the most per coordinator first (understaffed ones in red).
  const withResidents = report.grids.filter((g) => g.floating_residents > 0);
  const grids = (withResidents.length ? withResidents : report.grids.filter((g) => g.coordinators > 0))
    .sort((a, b) => b.floating_residents / Math.max(b.coordinators, 0.5) - a.floating_residents / Math.max(a.coordinators, 0.5)).slice(0, 20);
  render("chart-staffing", {
    xAxis: category(grids.map((g) => names.get(g.grid_code) || g.grid_code), 35),
    yAxis: [value({ name: t("series.residents"), nameTextStyle: { color: TEXT } }), value({ minInterval: 1, splitLine: { show: false }, name: t("series.coordinators"), nameTextStyle: { color: TEXT } })],
    series: [
      { name: t("series.residents"), type: "bar", barMaxWidth: 22, data: grids.map((g) => ({ value: g.floating_residents, itemStyle: { color: g.understaffed ? "#ef4444" : "#38bdf8" } })) },
      { name: t("series.coordinators"), type: "line", yAxisIndex: 1, data: grids.map((g) => g.coordinators), itemStyle: { color: "#22c55e" }, symbolSize: 6 },
      { name: t("series.required"), type: "line", yAxisIndex: 1, data: grids.map((g) => g.required_coordinators), itemStyle: { color: "#facc15" }, lineStyle: { type: "dashed" }, symbolSize: 6 },
    ],
  }, grids.length);
}

export function resizeAll() { for (const c of instances.values()) c.resize(); }
