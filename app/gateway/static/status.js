// Fill the status page from status.json every two seconds.
// Data reaches the DOM only through textContent and dataset, never as HTML.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  // Error ratio above which the figure turns red, as in the 5 % alert rule.
  const ERROR_RATIO_ALERT = 0.05;
  const CIRCUIT_STATES = new Set(["closed", "open", "half_open", "disabled"]);
  const ENDPOINT_STATES = new Set(["active"]);

  const services = document.getElementById("services");
  const updated = document.getElementById("updated");
  const template = document.getElementById("service-card");

  function orDash(value, format) {
    return typeof value === "number" && Number.isFinite(value) ? format(value) : "–";
  }

  function formatRate(value) {
    return value.toFixed(value < 10 ? 2 : 1);
  }

  function formatRatio(value) {
    return `${(value * 100).toFixed(1)} %`;
  }

  function formatMs(value) {
    if (value >= 1000) {
      return `${(value / 1000).toFixed(2)} s`;
    }
    return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
  }

  function field(root, name) {
    return root.querySelector(`[data-field="${name}"]`);
  }

  function renderEndpoint(endpoint) {
    const item = document.createElement("li");
    const url = document.createElement("span");
    url.className = "url";
    url.textContent = String(endpoint.url);
    const state = document.createElement("span");
    const name = String(endpoint.state);
    state.className = ENDPOINT_STATES.has(name) ? `state state-${name}` : "state";
    state.textContent = name;
    item.append(url, state);
    return item;
  }

  function renderService(service) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.service = String(service.name);
    field(card, "name").textContent = String(service.name);
    field(card, "required").textContent = service.required ? "required" : "optional";

    const circuit = String(service.circuit);
    const badge = field(card, "circuit");
    badge.textContent = `circuit ${circuit.replace("_", "-")}`;
    if (CIRCUIT_STATES.has(circuit)) {
      badge.classList.add(`circuit-${circuit}`);
    }

    field(card, "callsPerSecond").textContent = orDash(service.callsPerSecond, formatRate);
    const ratio = field(card, "errorRatio");
    ratio.textContent = orDash(service.errorRatio, formatRatio);
    if (service.errorRatio > ERROR_RATIO_ALERT) {
      ratio.classList.add("alert");
    }
    field(card, "p99Ms").textContent = orDash(service.p99Ms, formatMs);
    field(card, "inFlight").textContent = orDash(service.inFlight, String);
    field(card, "window").textContent =
      `${service.calls} calls, ${service.errors} failed, ` +
      `in the last ${Math.round(service.windowSeconds)} s`;

    const endpoints = (service.endpoints || []).map(renderEndpoint);
    field(card, "endpoints").replaceChildren(...endpoints);
    return card;
  }

  function render(body) {
    services.replaceChildren(...body.services.map(renderService));
    updated.textContent = `Updated at ${new Date().toLocaleTimeString()}`;
    document.body.classList.remove("stale");
  }

  async function refresh() {
    try {
      const response = await fetch("status.json", {
        cache: "no-store",
        headers: { Accept: "application/json" },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      render(await response.json());
    } catch (error) {
      updated.textContent = `Update failed (${error.message}); the figures shown are older`;
      document.body.classList.add("stale");
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  refresh();
})();
