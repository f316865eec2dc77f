// The dashboard's charts and number formats: one function per chart, each drawing the part of
// /dashboard/api/data it shows with plotly.js (served by the gateway). Loaded before
// dashboard.js, which owns the page's state; shares `window.CrossroadsCharts` with it.
"use strict";

window.CrossroadsCharts = (() => {
  const PALETTE = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  ];
  const ORIGIN_COLORS = {
    CN: "#e15759", US: "#4e79a7", FR: "#b07aa1", GB: "#76b7b2", DE: "#edc948",
    KR: "#f28e2b", JP: "#ff9da7", CA: "#9c755f", AE: "#59a14f", IL: "#8cd17d",
  };
  const WEIGHT_COLORS = { open: "#2e8b57", closed: "#5b6b82" };
  const NONE_COLOR = "#c3c9d2";
  const GRID = "#eef1f5";
  const PLOT_CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
  };
  const HOVER_DATE = { hour: "%a %b %d, %H:00 UTC", day: "%a %b %d, %Y", week: "week of %b %d, %Y" };
  const regions = typeof Intl.DisplayNames === "function"
    ? new Intl.DisplayNames(["en"], { type: "region" }) : null;
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

  const modelColors = new Map(); // a model keeps its colour across reloads of the data
  const $ = (id) => document.getElementById(id);

  // ---- formatting ---------------------------------------------------------------------------

  function usd(value) {
    const x = Number(value);
    if (value === null || value === undefined || !Number.isFinite(x)) return "–";
    if (x === 0) return "$0.00";
    const sign = x < 0 ? "−" : "";
    const abs = Math.abs(x);
    if (abs >= 1) {
      return sign + "$" + abs.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    return sign + "$" + Number(abs.toPrecision(4)).toString();
  }
  const count = (n) => (n === null || n === undefined ? "–" : compact.format(Number(n)));
  const pct = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(1) + "%");
  function ms(v, secondDigits = 2) {
    if (v === null || v === undefined) return "–";
    return v >= 1000 ? (v / 1000).toFixed(secondDigits) + " s" : Math.round(v) + " ms";
  }
  function countryLabel(code) {
    if (code === null) return "Unknown (model not in the catalog)";
    const name = regions ? regions.of(code) : null;
    return name && name !== code ? `${name} (${code})` : code;
  }
  const weightsLabel = (key) => (key === null ? "Unknown (model not in the catalog)" : key === "open" ? "Open weights" : "Closed weights");
  const modelLabel = (key) => (key === null ? "(no model)" : key);

  // ---- drawing ------------------------------------------------------------------------------

  /** Draws every chart; resolves when plotly has drawn them all. */
  function drawAll(data) {
    return Promise.all([
      drawSpend(data),
      drawSavings(data),
      drawAdoption("chart-adoption-origin", data, data.adoption.origin, countryLabel,
        (key) => (key === null ? NONE_COLOR : ORIGIN_COLORS[key] || modelColor("origin:" + key))),
      drawAdoption("chart-adoption-weights", data, data.adoption.weights, weightsLabel,
        (key) => (key === null ? NONE_COLOR : WEIGHT_COLORS[key])),
      drawLatency(data.latency),
      drawErrors(data.errors),
    ]);
  }

  function baseLayout(extra) {
    return Object.assign({
      margin: { l: 64, r: 16, t: 30, b: 44 },
      font: { family: getComputedStyle(document.body).fontFamily, size: 12, color: "#1d2430" },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", font: { size: 11 } },
      hoverlabel: { namelength: -1 },
    }, extra);
  }

  function timeLayout(data, yaxis, extra) {
    const interval = data.window.interval;
    return baseLayout(Object.assign({
      hovermode: "x unified",
      xaxis: {
        type: "date", gridcolor: GRID, linecolor: "#d5dae1", automargin: true,
        hoverformat: HOVER_DATE[interval],
        title: { text: `per ${interval}, UTC`, font: { size: 11, color: "#5f6b7a" }, standoff: 6 },
      },
      yaxis: Object.assign({ gridcolor: GRID, zerolinecolor: "#d5dae1", automargin: true, rangemode: "tozero" }, yaxis),
    }, extra));
  }

  function empty(id, message) {
    return Plotly.react(id, [], baseLayout({
      xaxis: { visible: false }, yaxis: { visible: false }, showlegend: false,
      annotations: [{
        text: message || "No requests in this window", showarrow: false,
        xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 14, color: "#8a94a3" },
      }],
    }), PLOT_CONFIG);
  }

  function modelColor(key) {
    if (!modelColors.has(key)) modelColors.set(key, PALETTE[modelColors.size % PALETTE.length]);
    return modelColors.get(key);
  }

  // Markers where there are few points: a single period has no line to show.
  function lineMode(periods, most) {
    return periods.length <= most ? "lines+markers" : "lines";
  }

  // Stack order for the share charts: open weights at the bottom, then the other groups from
  // the smallest total up, unknowns on top, so a growing minority is read against the axis.
  function stackOrder(series) {
    const rank = (s) => (s.key === null ? Infinity : s.key === "open" ? -Infinity : s.tokens.reduce((a, b) => a + b, 0));
    return [...series].sort((a, b) => rank(a) - rank(b));
  }

  function drawSpend(data) {
    const spend = data.spend;
    const series = spend.series.filter((s) => s.cost_usd.some((c) => Number(c) > 0));
    $("spend-unit").textContent = `USD at list prices, per ${data.window.interval}, by model`;
    if (!series.length) return empty("chart-spend", "No priced requests in this window");
    const traces = series.map((s) => ({
      type: "bar",
      name: modelLabel(s.key),
      meta: { key: s.key },
      x: spend.periods,
      y: s.cost_usd.map(Number),
      marker: { color: modelColor(s.key) },
      customdata: s.cost_usd.map((c, j) => [usd(c), s.requests[j]]),
      hovertemplate: "%{customdata[0]} · %{customdata[1]} requests",
    }));
    return Plotly.react("chart-spend", traces,
      timeLayout(data, { title: { text: "USD" }, tickprefix: "$" }, { barmode: "stack" }), PLOT_CONFIG);
  }

  function drawSavings(data) {
    const s = data.savings;
    const baseline = data.baseline_model || "baseline";
    $("savings-unit").textContent = `USD per ${data.window.interval}; baseline: ${baseline}`;
    if (!s.periods.length) return empty("chart-savings", "No request with a baseline price in this window");
    const mode = lineMode(s.periods, 48);
    const traces = [
      {
        type: "scatter", mode, name: "Actual cost", x: s.periods, y: s.actual_usd.map(Number),
        line: { color: "#2f6fdd", width: 2 }, marker: { size: 5 },
        customdata: s.actual_usd.map((v, i) => [usd(v), s.requests[i]]),
        hovertemplate: "%{customdata[0]} (%{customdata[1]} requests)",
      },
      {
        type: "scatter", mode, name: `At baseline prices (saved area shaded)`, x: s.periods,
        y: s.baseline_usd.map(Number), fill: "tonexty", fillcolor: "rgba(46, 139, 87, 0.16)",
        line: { color: "#7b8594", width: 2, dash: "dot" }, marker: { size: 5 },
        customdata: s.baseline_usd.map((v, i) => [usd(v), usd(s.saving_usd[i]), pct(s.saving_pct[i])]),
        hovertemplate: "%{customdata[0]} · saved %{customdata[1]} (%{customdata[2]})",
      },
    ];
    return Plotly.react("chart-savings", traces,
      timeLayout(data, { title: { text: "USD" }, tickprefix: "$" }), PLOT_CONFIG);
  }

  function drawAdoption(id, data, block, label, color) {
    if (!block.series.length) return empty(id, "No tokens in this window");
    const mode = lineMode(block.periods, 3);
    const traces = stackOrder(block.series).map((s, i) => ({
      type: "scatter", mode, stackgroup: "share", name: label(s.key), meta: { key: s.key },
      x: block.periods, y: s.token_share_pct.map(Number),
      line: { width: 1, color: color(s.key, i) }, marker: { size: 4 },
      customdata: s.tokens.map(count),
      hovertemplate: "%{y:.2f}% · %{customdata} tokens",
    }));
    return Plotly.react(id, traces,
      timeLayout(data, { title: { text: "% of tokens" }, range: [0, 100], ticksuffix: "%" }), PLOT_CONFIG);
  }

  function drawLatency(rows) {
    if (!rows.length) return empty("chart-latency", "No request reached a deployment in this window");
    const labels = rows.map((r) => r.deployment || r.provider);
    const values = rows.flatMap((r) => [r.p50_ms, r.p99_ms]).filter((v) => v > 0);
    const wide = values.length && Math.max(...values) / Math.min(...values) > 30;
    const traces = [["p50_ms", "p50", "#9ecae1"], ["p95_ms", "p95", "#4292c6"], ["p99_ms", "p99", "#08519c"]]
      .map(([field, name, fill]) => ({
        type: "bar", orientation: "h", name, y: labels, x: rows.map((r) => r[field]),
        marker: { color: fill },
        customdata: rows.map((r) => [r.requests, ms(r[field]), ms(r.mean_ttft_ms)]),
        hovertemplate: `%{y}<br>${name}: %{customdata[1]} · %{customdata[0]} requests · mean TTFT %{customdata[2]}<extra></extra>`,
      }));
    return Plotly.react("chart-latency", traces, baseLayout({
      barmode: "group",
      margin: { l: 16, r: 16, t: 30, b: 44 },
      xaxis: { title: { text: wide ? "ms (log scale)" : "ms" }, type: wide ? "log" : "linear", gridcolor: GRID, automargin: true },
      yaxis: { autorange: "reversed", automargin: true },
    }), PLOT_CONFIG);
  }

  function drawErrors(rows) {
    if (!rows.length) return empty("chart-errors");
    const rates = rows.map((r) => Number(r.error_rate_pct));
    const top = Math.max(5, ...rates) * 1.15;
    const traces = [{
      type: "bar", orientation: "h", name: "error rate",
      y: rows.map((r) => r.provider === null ? "(rejected before routing)" : r.provider),
      x: rates,
      text: rows.map((r) => `${r.errors} of ${r.requests}`),
      textposition: rates.map((r) => (r > top / 2 ? "inside" : "outside")),
      cliponaxis: false,
      marker: { color: rates.map((r) => (r >= 5 ? "#c8414b" : r >= 1 ? "#e8a33d" : "#59a14f")) },
      customdata: rows.map((r) => [pct(r.error_rate_pct), r.errors, r.requests, r.cancelled]),
      hovertemplate: "%{y}: %{customdata[0]} · %{customdata[1]} errors in %{customdata[2]} requests" +
        " · %{customdata[3]} cancelled<extra></extra>",
    }];
    return Plotly.react("chart-errors", traces, baseLayout({
      showlegend: false,
      margin: { l: 16, r: 16, t: 12, b: 44 },
      xaxis: { title: { text: "% of requests" }, ticksuffix: "%", range: [0, top], gridcolor: GRID },
      yaxis: { autorange: "reversed", automargin: true },
    }), PLOT_CONFIG);
  }

  return { drawAll, usd, count, pct, ms };
})();
