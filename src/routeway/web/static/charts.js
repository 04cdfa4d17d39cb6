// Draws the page's charts with uPlot from <script type="application/json" id="chart-data">.
// Each chart: {kind: "line" | "bars", x: [unix seconds], series: [{label, values}], unit, empty, y_range?}.
"use strict";

(function () {
  const PALETTE = ["#6366f1", "#10b981", "#f59e0b", "#ef4444", "#0ea5e9", "#a855f7", "#14b8a6", "#f97316"];

  function formatValue(unit, v) {
    if (v == null) return "—";
    if (unit === "spend") return "$" + (Math.abs(v) >= 1 ? v.toFixed(2) : Number(v.toPrecision(3)).toString());
    if (unit === "%") return v.toFixed(1) + "%";
    if (unit === "ms") return Math.round(v) + " ms";
    if (unit === "tok/s") return v.toFixed(1) + " tok/s";
    return compact(v);
  }

  function tick(unit, v) {
    if (unit === "spend") return "$" + (v === 0 || Math.abs(v) >= 1 ? compact(v) : Number(v.toPrecision(2)).toString());
    if (unit === "%") return v + "%";
    if (unit === "ms") return compact(v) + " ms";
    return compact(v);
  }

  function compact(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toPrecision(3) + "B";
    if (a >= 1e6) return (v / 1e6).toPrecision(3) + "M";
    if (a >= 1e3) return (v / 1e3).toPrecision(3) + "K";
    return Number.isInteger(v) ? String(v) : v.toPrecision(3);
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const DAY = 86400;

  function dayLabel(t) {  // day buckets are UTC days
    const d = new Date(t * 1000);
    return MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
  }

  function labelWidth(u, values) {
    const longest = Math.max(1, ...(values || []).map((v) => String(v).length));
    return Math.ceil(longest * 6.8) + 18;
  }

  function options(spec, width) {
    const bars = spec.kind === "bars";
    const series = [{}];
    spec.series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke: color,
        width: bars ? 0 : 2,
        fill: bars ? color + "cc" : undefined,
        spanGaps: !bars,
        points: { show: !bars, size: 6, fill: color },
        paths: bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined,
        value: (u, v) => formatValue(spec.unit, v),
      });
    });
    const scales = { x: { time: true } };
    const first = spec.x[0], last = spec.x[spec.x.length - 1];
    if (!bars && last - first < 3600) scales.x.range = () => [last - 3600, last + 300]; // a few points: show an hour
    if (spec.y_range) scales.y = { range: spec.y_range };
    else if (bars) scales.y = { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };
    else scales.y = { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] };
    return {
      width: width,
      height: 220,
      series: series,
      scales: scales,
      legend: { show: true, live: true },
      cursor: { points: { size: 7 } },
      axes: [
        spec.daily
          ? { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e5e7eb" }, space: 48,
              incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY], values: (u, ticks) => ticks.map(dayLabel) }
          : { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e5e7eb" } },
        { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e5e7eb" }, size: labelWidth,
          values: (u, ticks) => ticks.map((t) => tick(spec.unit, t)) },
      ],
    };
  }

  function draw(element, spec) {
    element.innerHTML = "";
    if (!spec || spec.empty) {
      element.classList.add("is-empty");
      element.textContent = "No data yet: this chart fills in as requests go through this server.";
      element.dataset.state = "empty";
      return;
    }
    const width = Math.max(240, element.clientWidth || element.parentElement.clientWidth || 320);
    const data = [spec.x].concat(spec.series.map((s) => s.values));
    const plot = new uPlot(options(spec, width), data, element);
    element.dataset.state = "drawn";
    element.dataset.points = String(spec.x.length);
    new ResizeObserver(() => {
      const w = Math.max(240, element.clientWidth);
      if (Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height: 220 });
    }).observe(element);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const source = document.getElementById("chart-data");
    if (!source || typeof uPlot === "undefined") return;
    const charts = JSON.parse(source.textContent);
    document.querySelectorAll("[data-chart]").forEach((el) => draw(el, charts[el.dataset.chart]));
  });
})();
