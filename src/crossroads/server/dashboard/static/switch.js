// The switch report page: asks /dashboard/api/switch for one pair of served names and shows
// the verdict, outcomes with intervals, costs and the breakdowns. Every value is written as
// text (textContent), never as HTML. The admin key, when needed, is the dashboard's own
// (this tab's sessionStorage), sent only as an Authorization header.
"use strict";

(() => {
  const KEY_STORE = "crossroads.adminKey";
  const $ = (id) => document.getElementById(id);
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(0) + "%");
  const usd = (x) => (x === null || x === undefined ? "–" : "$" + Number(x).toFixed(4));

  function storedKey() {
    try { return sessionStorage.getItem(KEY_STORE); } catch (err) { return null; }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
    } catch (err) { /* storage disabled: the key lasts until reload */ }
  }

  function fill(tableId, rows) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const value of row) {
        const td = document.createElement("td");
        td.textContent = value === null || value === undefined ? "–" : String(value);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function show(r) {
    $("call").textContent = r.call.split(":")[0];
    $("call").title = r.call;
    $("items").textContent = `${r.items} items; runs: ${r.runs.join(", ") || "none"}`;
    $("saving").textContent = usd(r.saving_usd_per_30d);
    const ratio = r.cost_usd.ratio;
    $("ratio").textContent = ratio === null ? "no priced items"
      : `cost x${Number(ratio).toFixed(3)} over ${r.cost_usd.priced_items} items`;
    const lat = r.latency_ms;
    $("latency").textContent = lat.items
      ? `${lat.from_median.toFixed(0)} → ${lat.to_median.toFixed(0)} ms` : "–";
    $("latency-sub").textContent = lat.items ? `over ${lat.items} items` : "";
    const tools = r.tool_agreement;
    $("tools").textContent = tools ? pct(tools.share) : "–";
    $("tools-sub").textContent = tools ? `${tools.count} items; ${pct(tools.low)}–${pct(tools.high)}` : "no tool calls";
    fill("outcomes", ["win", "tie", "loss"].map((k) => [
      k, r[k].count, pct(r[k].share), `${pct(r[k].low)}–${pct(r[k].high)}`,
    ]));
    fill("by-served", r.by_served.map((s) => [s.served, s.items, s.win, s.tie, s.loss, s.call, usd(s.saving)]));
    fill("by-task", r.by_task.map((t) => [t.task, t.items, t.win, t.tie, t.loss, t.call]));
    document.body.dataset.state = "ready";
  }

  async function load() {
    const params = new URLSearchParams({ from: $("from").value, to: $("to").value });
    if ($("run").value) params.set("run", $("run").value);
    history.replaceState(null, "", "#" + params);
    document.body.dataset.state = "loading";
    $("banner").hidden = true;
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) headers.Authorization = "Bearer " + key;
    let response, body;
    try {
      response = await fetch("/dashboard/api/switch?" + params, { headers, cache: "no-store", credentials: "omit" });
      body = await response.json().catch(() => null);
    } catch (err) {
      fail("Could not reach the gateway: " + err.message);
      return;
    }
    if (response.status === 401 || response.status === 403) {
      storeKey(null);
      document.body.dataset.state = "auth";
      $("login").hidden = false;
      $("login-error").textContent = (body && body.error && body.error.message) || "";
      return;
    }
    if (!response.ok || !body) {
      fail((body && body.error && body.error.message) || `HTTP ${response.status}`);
      return;
    }
    $("login").hidden = true;
    show(body);
  }

  function fail(message) {
    document.body.dataset.state = "error";
    $("banner").textContent = message;
    $("banner").hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const params = new URLSearchParams(location.hash.slice(1));
    $("from").value = params.get("from") || "";
    $("to").value = params.get("to") || "";
    $("run").value = params.get("run") || "";
    $("pair").addEventListener("submit", (event) => { event.preventDefault(); load(); });
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      storeKey($("admin-key").value);
      load();
    });
    if ($("from").value && $("to").value) load();
  });
})();
