// The Crossroads dashboard: loads /dashboard/api/data for the chosen window and draws it with
// plotly.js, which the gateway serves itself. When the gateway runs in keys mode the admin key is
// asked for once, kept in this tab's sessionStorage and sent only as an Authorization header.
"use strict";

(() => {
  const KEY_STORE = "crossroads.adminKey";
  const RANGE_HOURS = { "24h": 24, "7d": 168, "30d": 720, "90d": 2160 };
  const REFRESH_MS = 60000;
  const { drawAll, usd, count, pct, ms } = window.CrossroadsCharts;

  const state = { range: "7d", interval: "", from: "", to: "", controller: null };
  const $ = (id) => document.getElementById(id);
  const shortTime = (iso) => iso.slice(0, 16).replace("T", " ");

  // ---- the window ---------------------------------------------------------------------------

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const range = params.get("range");
    if (range && (range in RANGE_HOURS || range === "custom")) state.range = range;
    if (["hour", "day", "week"].includes(params.get("interval"))) state.interval = params.get("interval");
    state.from = params.get("from") || "";
    state.to = params.get("to") || "";
    if (state.range === "custom" && !(state.from && state.to)) state.range = "7d";
  }

  function writeHash() {
    const params = new URLSearchParams({ range: state.range });
    if (state.interval) params.set("interval", state.interval);
    if (state.range === "custom") {
      params.set("from", state.from);
      params.set("to", state.to);
    }
    history.replaceState(null, "", "#" + params);
  }

  function query() {
    const params = new URLSearchParams();
    if (state.range === "custom") {
      params.set("since", new Date(state.from).toISOString());
      params.set("until", new Date(state.to).toISOString());
    } else {
      const until = new Date();
      params.set("since", new Date(until.getTime() - RANGE_HOURS[state.range] * 3600e3).toISOString());
      params.set("until", until.toISOString());
    }
    if (state.interval) params.set("interval", state.interval);
    return params;
  }

  function localInput(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function syncControls() {
    for (const button of document.querySelectorAll("[data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === state.range));
    }
    $("custom-range").hidden = state.range !== "custom";
    if (state.range === "custom" && state.from && state.to) {
      $("custom-from").value = state.from;
      $("custom-to").value = state.to;
    }
    $("interval").value = state.interval;
    $("forget-key").hidden = !storedKey();
  }

  // ---- the admin key ------------------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORE);
    } catch (err) {
      return null;
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORE, key);
      else sessionStorage.removeItem(KEY_STORE);
    } catch (err) {
      // Storage disabled: the key lasts until the page is reloaded.
    }
  }

  function askForKey(message) {
    setState("auth");
    $("login-error").textContent = message;
    $("admin-key").value = "";
    $("admin-key").focus();
  }

  // ---- loading ------------------------------------------------------------------------------

  function setState(name) {
    document.body.dataset.state = name;
    $("login").hidden = name !== "auth";
    if (name !== "error") $("banner").hidden = true;
    if (name === "loading") $("status-line").textContent = "Loading…";
  }

  function fail(message) {
    setState("error");
    $("banner").textContent = message;
    $("banner").hidden = false;
    $("status-line").textContent = "";
  }

  async function load() {
    if (state.range === "custom" && !(Date.parse(state.from) < Date.parse(state.to))) {
      fail("Choose a custom range whose start is before its end.");
      return;
    }
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    writeHash();
    syncControls();
    setState("loading");
    const key = storedKey();
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = "Bearer " + key;
    let response;
    let body = null;
    try {
      response = await fetch("/dashboard/api/data?" + query(), {
        headers, cache: "no-store", credentials: "omit", signal: controller.signal,
      });
      body = await response.json().catch(() => null);
    } catch (err) {
      if (err.name !== "AbortError") fail("Could not reach the gateway: " + err.message);
      return;
    }
    if (controller !== state.controller) return;
    if (response.status === 401) {
      storeKey(null);
      syncControls();
      askForKey(key ? "The gateway did not accept that key." : "");
    } else if (response.status === 403) {
      storeKey(null);
      syncControls();
      askForKey("That key is valid, but it is not the admin key.");
    } else if (!response.ok) {
      fail((body && body.error && body.error.message) || `The gateway answered ${response.status}.`);
    } else if (typeof Plotly === "undefined") {
      fail("plotly.js did not load from /dashboard/static/plotly.min.js.");
    } else {
      await render(body);
    }
  }

  // ---- drawing ------------------------------------------------------------------------------

  async function render(data) {
    window.crossroadsDashboard = data; // the last answer, for people debugging in the console
    renderKpis(data);
    await drawAll(data);
    const notes = $("notes");
    notes.replaceChildren(...data.notes.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    const w = data.window;
    $("status-line").textContent = `${shortTime(w.since)} → ${shortTime(w.until)} UTC · per ${w.interval}` +
      ` · updated ${new Date().toLocaleTimeString()}`;
    setState("ready");
  }

  function setKpi(id, value, sub, tone) {
    $(id).textContent = value;
    $(id + "-sub").textContent = sub;
    $(id).parentElement.classList.toggle("bad", tone === "bad");
  }

  function renderKpis(data) {
    const t = data.totals;
    const baseline = data.baseline_model ? data.baseline_model.split("/").pop() : "the baseline";
    setKpi("kpi-spend", usd(t.cost_usd),
      `${count(t.requests)} requests` + (t.unpriced_requests ? ` · ${count(t.unpriced_requests)} unpriced` : "") +
      (t.estimated_requests ? ` · ${usd(t.estimated_cost_usd)} estimated` : ""));
    setKpi("kpi-saving", usd(t.saving_usd),
      t.saving_pct === null ? "no request with a baseline price" : `${pct(t.saving_pct)} below ${baseline}`,
      Number(t.saving_usd) < 0 ? "bad" : "");
    setKpi("kpi-runrate", t.annual_run_rate_usd === null ? "–" : usd(t.annual_run_rate_usd) + "/yr",
      t.saving_per_day_usd === null ? "" : `saving ${usd(t.saving_per_day_usd)} a day`);
    setKpi("kpi-tokens", count(t.tokens), `${pct(t.open_weights_token_share_pct)} on open weights`);
    setKpi("kpi-requests", count(t.requests), `${count(t.errors)} errors (${pct(t.error_rate_pct)})`,
      Number(t.error_rate_pct) > 5 ? "bad" : "");
    setKpi("kpi-latency", `${ms(t.p50_ms, 1)} / ${ms(t.p95_ms, 1)}`, "all deployments, arrival to last byte");
  }


  // ---- wiring -------------------------------------------------------------------------------

  function start() {
    readHash();
    for (const button of document.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => {
        state.range = button.dataset.range;
        if (state.range === "custom") {
          // Opens the from-to form, prefilled; the data reloads on Apply.
          const now = new Date();
          state.from = state.from || localInput(new Date(now.getTime() - 7 * 86400e3));
          state.to = state.to || localInput(now);
          syncControls();
          return;
        }
        load();
      });
    }
    $("custom-range").addEventListener("submit", (event) => {
      event.preventDefault();
      state.from = $("custom-from").value;
      state.to = $("custom-to").value;
      load();
    });
    $("interval").addEventListener("change", () => {
      state.interval = $("interval").value;
      if (state.range === "custom") {
        state.from = $("custom-from").value;
        state.to = $("custom-to").value;
      }
      load();
    });
    $("refresh").addEventListener("click", load);
    $("forget-key").addEventListener("click", () => {
      storeKey(null);
      load();
    });
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      storeKey($("admin-key").value.trim());
      $("admin-key").value = "";
      load();
    });
    window.addEventListener("hashchange", () => {
      readHash();
      load();
    });
    setInterval(() => {
      const visible = document.visibilityState === "visible";
      if (visible && state.range !== "custom" && document.body.dataset.state === "ready") load();
    }, REFRESH_MS);
    load();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
