// The infra-ops dashboard: polls the ops API and draws it. No framework, nothing fetched from elsewhere;
// every value from the server is written with textContent, never as HTML.
"use strict";

const POINTS = 180; // chart history kept in the page: three minutes at one poll a second
const series = new Map(); // transaction -> [{t, rate, p50, p95, p99}]
let chosenTransaction = null;
let chosenTrace = null;

// The token: from the URL fragment (#token=..., which never reaches the server), or typed in; kept for the
// tab's lifetime only.
function token() { return sessionStorage.getItem("infra-ops-token") || ""; }
function setToken(value) {
  if (value) { sessionStorage.setItem("infra-ops-token", value); } else { sessionStorage.removeItem("infra-ops-token"); }
  document.getElementById("token-state").textContent = value ? "token set" : "no token: actions will be refused";
}

function say(text, bad) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.style.color = bad ? "var(--bad)" : "";
}

async function read(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) { throw new Error(`${path}: ${response.status}`); }
  return response.json();
}

// A mutation: the token goes along; a refusal is shown, not thrown.
async function act(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token()}` },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(`${method} ${path} refused (${response.status}): ${answer.error || "no reason given"}`, true);
    return null;
  }
  say(`${method} ${path}: done`);
  await refreshAll();
  return answer;
}

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined && text !== null) { made.textContent = String(text); }
  if (className) { made.className = className; }
  return made;
}

function button(label, onClick, className) {
  const made = element("button", label, className);
  made.type = "button";
  made.addEventListener("click", onClick);
  return made;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
}

function row(...cells) {
  const made = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) { td.appendChild(cell); } else { td.textContent = cell === null || cell === undefined ? "" : String(cell); }
    made.appendChild(td);
  }
  return made;
}

// ---- charts ------------------------------------------------------------------------------------------

function record(transactions, at) {
  for (const tx of transactions) {
    const points = series.get(tx.name) || [];
    points.push({ t: at, rate: tx.rate_1m, p50: tx.p50_us, p95: tx.p95_us, p99: tx.p99_us });
    while (points.length > POINTS) { points.shift(); }
    series.set(tx.name, points);
  }
}

function drawChart(canvasId, points, lines) {
  const canvas = document.getElementById(canvasId);
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  if (points.length < 2) { return; }
  const max = Math.max(1e-9, ...points.flatMap((p) => lines.map((line) => p[line.key] || 0))) * 1.1;
  const left = 48, bottom = height - 18;
  context.strokeStyle = "#2a3642";
  context.fillStyle = "#8a97a6";
  context.font = "11px system-ui";
  for (let i = 0; i <= 4; i += 1) {
    const y = bottom - (bottom - 6) * (i / 4);
    context.beginPath(); context.moveTo(left, y); context.lineTo(width - 4, y); context.stroke();
    context.fillText(formatNumber(max * i / 4), 2, y + 4);
  }
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const x = (t) => left + (width - left - 4) * ((t - t0) / Math.max(1e-9, t1 - t0));
  for (const line of lines) {
    context.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue(line.color) || line.color;
    context.lineWidth = 1.5;
    context.beginPath();
    points.forEach((p, i) => {
      const y = bottom - (bottom - 6) * ((p[line.key] || 0) / max);
      if (i === 0) { context.moveTo(x(p.t), y); } else { context.lineTo(x(p.t), y); }
    });
    context.stroke();
  }
  context.fillStyle = "#8a97a6";
  context.fillText(`${Math.round(t1 - t0)} s`, width - 40, height - 4);
}

function formatNumber(value) {
  if (value >= 1e6) { return `${(value / 1e6).toFixed(1)}M`; }
  if (value >= 1e3) { return `${(value / 1e3).toFixed(1)}k`; }
  return value >= 10 ? value.toFixed(0) : value.toFixed(1);
}

async function refreshOverview() {
  const overview = await read(`/api/v1/overview?history=${series.size === 0}`);
  document.getElementById("service").textContent = overview.service;
  if (series.size === 0) {
    for (const snapshot of overview.history) { record(snapshot.transactions, snapshot.at_seconds); }
  }
  record(overview.transactions, overview.at_seconds);
  const select = document.getElementById("transaction");
  const names = overview.transactions.map((tx) => tx.name);
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((name) => { const option = element("option", name); option.value = name; return option; }));
  }
  if (!chosenTransaction || !names.includes(chosenTransaction)) {
    const busiest = [...overview.transactions].sort((a, b) => b.count - a.count)[0];
    chosenTransaction = busiest ? busiest.name : null;
  }
  if (chosenTransaction) { select.value = chosenTransaction; }
  const points = series.get(chosenTransaction) || [];
  drawChart("rate-chart", points, [{ key: "rate", color: "--p50" }]);
  drawChart("latency-chart", points, [{ key: "p50", color: "--p50" }, { key: "p95", color: "--p95" }, { key: "p99", color: "--p99" }]);
  const now = overview.transactions.find((tx) => tx.name === chosenTransaction);
  document.getElementById("transaction-summary").textContent = now
    ? `${now.count} in all, ${now.rate_1m.toFixed(0)}/s, errors ${(now.error_rate_1m * 100).toFixed(2)}%, ` +
      `p50 ${now.p50_us.toFixed(1)} us, p99 ${now.p99_us.toFixed(1)} us (last minute)`
    : "no transactions recorded yet";
}

// ---- panels ------------------------------------------------------------------------------------------

async function refreshReadiness() {
  const pill = document.getElementById("readiness");
  try {
    const ready = await fetch("/readyz");
    pill.textContent = ready.ok ? "ready" : "shutting down";
    pill.className = `pill ${ready.ok ? "ok" : "bad"}`;
  } catch (error) {
    pill.textContent = "unreachable";
    pill.className = "pill bad";
  }
}

async function refreshAlerts() {
  const { alerts } = await read("/api/v1/alerts");
  document.getElementById("alert-count").textContent = alerts.length;
  fillTable("alerts", alerts.map((alert) => {
    const name = element("span", alert.title);
    name.title = alert.description;
    const actions = element("span");
    if (alert.status === "firing") {
      actions.appendChild(button("Acknowledge", () => act("POST", `/api/v1/alerts/${alert.id}/acknowledge`, { by: "dashboard" })));
    }
    actions.appendChild(button("Resolve", () => act("POST", `/api/v1/alerts/${alert.id}/resolve`)));
    const made = row(element("span", alert.severity, `sev-${alert.severity}`), name, alert.status, actions);
    made.dataset.alert = alert.id;
    return made;
  }));
}

async function refreshFlags() {
  const { flags } = await read("/api/v1/flags");
  fillTable("flags", flags.map((flag) => {
    const toggle = document.createElement("input");
    toggle.type = "checkbox";
    toggle.checked = flag.enabled;
    toggle.setAttribute("aria-label", `toggle ${flag.name}`);
    toggle.addEventListener("change", () => act("POST", `/api/v1/flags/${encodeURIComponent(flag.name)}/toggle`, { enabled: toggle.checked }));
    const rollout = flag.rollout_percent === null ? "" : `${flag.rollout_percent}%`;
    const made = row(flag.name, toggle, rollout, `${flag.evaluations.yes} on / ${flag.evaluations.no} off`);
    made.dataset.flag = flag.name;
    return made;
  }));
}

async function refreshDeployments() {
  const status = await read("/api/v1/deployments");
  const split = document.getElementById("split");
  split.replaceChildren(...status.deployments.filter((d) => d.percent > 0).map((d) => {
    const part = element("div", `${d.name} ${d.percent.toFixed(0)}%`);
    part.style.flex = `${d.percent} 1 0`;
    part.title = `${d.name} ${d.version}: ${d.percent.toFixed(1)}%, ${d.health}`;
    return part;
  }));
  const rollout = document.getElementById("rollout");
  if (status.rollout) {
    const phase = status.rollout.phase;
    rollout.textContent = `rollout ${phase.state}` + (phase.step !== undefined ? ` at step ${phase.step + 1}` : "") +
      (phase.reason ? `: ${phase.reason}` : "");
  } else {
    rollout.textContent = "no rollout";
  }
}

async function refreshChaos() {
  const { killed, experiments } = await read("/api/v1/chaos/experiments");
  const pill = document.getElementById("chaos-state");
  pill.textContent = killed ? "killed" : "armed";
  pill.className = `pill ${killed ? "bad" : "ok"}`;
  fillTable("experiments", experiments.slice(-10).reverse().map((experiment) => {
    const stop = experiment.state === "running"
      ? button("Stop", () => act("POST", `/api/v1/chaos/experiments/${experiment.id}/stop`))
      : "";
    const made = row(experiment.name || experiment.id, experiment.target, experiment.state, experiment.injections, stop);
    made.dataset.experiment = experiment.id;
    return made;
  }));
}

async function refreshTraces() {
  const { traces } = await read("/api/v1/traces?limit=20");
  const select = document.getElementById("trace-select");
  const options = traces.map((trace) => {
    const option = element("option", `${trace.root} ${trace.duration_us.toFixed(0)} us, ${trace.spans} spans ${trace.status === "error" ? "(error)" : ""}`);
    option.value = trace.trace_id;
    return option;
  });
  select.replaceChildren(...options);
  if (!chosenTrace || !traces.some((trace) => trace.trace_id === chosenTrace)) {
    chosenTrace = traces.length ? traces[0].trace_id : null;
  }
  if (chosenTrace) { select.value = chosenTrace; await drawTrace(chosenTrace); }
}

async function drawTrace(id) {
  const waterfall = document.getElementById("waterfall");
  let trace;
  try { trace = await read(`/api/v1/traces/${id}`); } catch (error) { waterfall.replaceChildren(element("p", "trace no longer kept", "muted")); return; }
  const start = Math.min(...trace.spans.map((span) => span.start_unix_nanos));
  const end = Math.max(...trace.spans.map((span) => span.end_unix_nanos));
  const total = Math.max(1, end - start);
  const depth = new Map();
  const rows = trace.spans.map((span) => {
    const level = span.parent_span_id && depth.has(span.parent_span_id) ? depth.get(span.parent_span_id) + 1 : 0;
    depth.set(span.span_id, level);
    const line = element("div", null, "row");
    const name = element("div", span.name, "name");
    name.style.paddingLeft = `${level}em`;
    name.title = `${span.name} (${span.kind})`;
    const lane = element("div", null, "lane");
    const bar = element("div", null, `bar${span.status === "error" ? " error" : ""}`);
    bar.style.left = `${(100 * (span.start_unix_nanos - start)) / total}%`;
    bar.style.width = `${(100 * (span.end_unix_nanos - span.start_unix_nanos)) / total}%`;
    lane.appendChild(bar);
    line.append(name, lane, element("div", `${span.duration_us.toFixed(1)} us`, "took"));
    return line;
  });
  waterfall.replaceChildren(...rows);
}

async function refreshLogs() {
  const { entries } = await read("/api/v1/logs?limit=15");
  fillTable("logs", entries.reverse().map((entry) => row(entry.timestamp || "", entry.level, entry.component, entry.message)));
}

async function refreshAll() {
  await Promise.allSettled([refreshReadiness(), refreshOverview(), refreshAlerts(), refreshFlags(), refreshDeployments(), refreshChaos(), refreshLogs()]);
}

function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    setToken(fragment.get("token"));
    history.replaceState(null, "", location.pathname); // out of the address bar and the history
  } else {
    setToken(token());
  }
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    setToken(input.value.trim());
    input.value = "";
  });
  document.getElementById("transaction").addEventListener("change", (event) => { chosenTransaction = event.target.value; refreshOverview(); });
  document.getElementById("trace-select").addEventListener("change", (event) => { chosenTrace = event.target.value; drawTrace(chosenTrace); });
  document.getElementById("promote").addEventListener("click", () => act("POST", "/api/v1/deployments/promote"));
  document.getElementById("rollback").addEventListener("click", () => act("POST", "/api/v1/deployments/rollback", { reason: "rolled back from the dashboard" }));
  document.getElementById("kill-switch").addEventListener("click", () => act("POST", "/api/v1/chaos/kill-switch"));
  document.getElementById("rearm").addEventListener("click", () => act("POST", "/api/v1/chaos/rearm"));
  refreshAll();
  refreshTraces();
  setInterval(refreshAll, 1000);
  setInterval(refreshTraces, 5000);
}

start();
