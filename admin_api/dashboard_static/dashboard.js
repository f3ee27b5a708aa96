// edgemq dashboard: polls the admin API's v4 endpoints (same origin, the browser's Basic
// credentials) and renders them. No framework; every value from the broker is set as text.
"use strict";

const API = "/api/v4";
const POLL_MS = 2000;            // one /metrics request per poll, plus the visible list panel
const SLOW_EVERY = 5;            // version, uptime, listeners and the retained count: every 10 s
const HISTORY = 150;             // rate samples kept: five minutes at one per poll
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
const history = [];              // {t, in, out} message rates per second
const pages = { clients: 1, subscriptions: 1, retained: 1 };
let clientFilters = {};          // the filter form's values as of its last submit
let previous = null;             // the last /metrics answer with its time, for the rates
let tick = 0;
let timer = null;
let shownPayload = null;         // {topic, bytes} of the retained message shown

class ApiFailure extends Error {}

// One API request; resolves to the JSON body of a {"code": 0} answer, else throws ApiFailure.
async function api(path, method = "GET") {
  let response;
  try {
    response = await fetch(API + path, { method, headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (error) {
    throw new ApiFailure(`${method} ${API}${path}: the broker does not answer (${error.message})`);
  }
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok || body === null || body.code !== 0) {
    const detail = body && body.message ? body.message : response.statusText;
    const code = body && body.code !== undefined ? ` (code ${body.code})` : "";
    throw new ApiFailure(`${method} ${API}${path}: ${response.status}${code} ${detail}`);
  }
  return body;
}

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof ApiFailure ? error.message : `Error: ${error.message}`;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

const number = (n) => Number(n).toLocaleString("en");

function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(n), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function emptyRow(tbody, columns, text) {
  const td = tbody.insertRow().insertCell();
  td.colSpan = columns;
  td.className = "empty";
  td.textContent = text;
}

function button(label, accessibleName, onClick, className) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.setAttribute("aria-label", accessibleName);
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== undefined) search.set(key, value);
  return search.toString();
}

// ---- overview -------------------------------------------------------------------------------

function showMetrics(metrics) {
  const now = performance.now();
  $("fig-connected").textContent = number(metrics.connected);
  $("fig-sessions").textContent = number(metrics.connections);
  $("fig-subscriptions").textContent = number(metrics.subscriptions);
  $("fig-in").textContent = number(metrics.messages_received);
  $("fig-out").textContent = number(metrics.messages_sent);
  $("fig-drop").textContent = number(metrics.messages_dropped);
  $("fig-memory").textContent = bytes(metrics.memory);
  $("fig-cpu").textContent = metrics.cpuinfo;
  if (previous !== null) {
    const seconds = Math.max((now - previous.t) / 1000, 0.001);
    const rate = {
      t: now,
      in: Math.max(metrics.messages_received - previous.metrics.messages_received, 0) / seconds,
      out: Math.max(metrics.messages_sent - previous.metrics.messages_sent, 0) / seconds,
    };
    history.push(rate);
    if (history.length > HISTORY) history.shift();
    $("fig-rate").textContent = `${rate.in.toFixed(1)} / ${rate.out.toFixed(1)} msg/s`;
  }
  previous = { t: now, metrics };
  drawChart();
  showStore(metrics.store);
}

async function refreshSlow() {
  const [brokers, retained] = await Promise.all([api("/brokers"), api("/mqtt/retained?_limit=1")]);
  const about = brokers.data[0];
  const uptime = about.uptime.replace(" Hours,", " h").replace(" minutes,", " min").replace(" seconds", " s");
  $("fig-uptime").textContent = uptime;
  $("fig-version").textContent = about.version;
  $("fig-retained").textContent = number(retained.meta.count);
  const list = $("listeners");
  list.replaceChildren(...(about.listeners || []).map((url) => {
    const item = document.createElement("li");
    item.textContent = url;
    return item;
  }));
  $("status").textContent = `edgemq ${about.version}, up ${uptime}`;
}

function drawChart() {
  const canvas = $("rate-chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width || !height) return;           // hidden panel: drawn when shown
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(document.documentElement);
  const top = Math.max(1, ...history.map((s) => Math.max(s.in, s.out)));
  const left = 48, bottom = height - 18;
  g.strokeStyle = style.getPropertyValue("--line");
  g.fillStyle = style.getPropertyValue("--muted");
  g.font = "12px system-ui, sans-serif";
  g.lineWidth = 1;
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * (bottom - 8);
    g.beginPath(); g.moveTo(left, y); g.lineTo(width, y); g.stroke();
    g.fillText(formatRate(top * fraction), 2, y + 4);
  }
  g.fillText("5 min ago", left, height - 3);
  g.fillText("now", width - 26, height - 3);
  const x = (i) => left + (width - left) * (i + HISTORY - history.length) / (HISTORY - 1);
  for (const [key, color] of [["in", "--in"], ["out", "--out"]]) {
    g.strokeStyle = style.getPropertyValue(color);
    g.lineWidth = 2;
    g.beginPath();
    history.forEach((sample, i) => {
      const y = bottom - sample[key] / top * (bottom - 8);
      if (i === 0) g.moveTo(x(i), y); else g.lineTo(x(i), y);
    });
    g.stroke();
  }
}

function formatRate(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(1)}k/s` : `${value.toFixed(value < 10 ? 1 : 0)}/s`;
}

// ---- paged tables ---------------------------------------------------------------------------

function showPager(name, meta) {
  const pager = document.querySelector(`.pager[data-for="${name}"]`);
  const last = Math.max(1, Math.ceil(meta.count / meta.limit));
  pager.querySelector("span").textContent = `Page ${meta.page} of ${last} (${number(meta.count)})`;
  pager.querySelector('[data-step="-1"]').disabled = meta.page <= 1;
  pager.querySelector('[data-step="1"]').disabled = meta.page >= last;
}

async function refreshClients() {
  const body = await api(`/clients?${query({ ...clientFilters, _page: pages.clients, _limit: PAGE_SIZE })}`);
  const tbody = $("clients-table").tBodies[0];
  tbody.replaceChildren();
  for (const client of body.data) {
    const row = tbody.insertRow();
    cell(row, client.client_id);
    cell(row, client.username);
    cell(row, client.conn_state);
    cell(row, client.ip_address ? `${client.ip_address}:${client.port}` : "");
    cell(row, client.connected_at || "");
    cell(row, number(client.recv_msg), "number");
    cell(row, number(client.send_msg), "number");
    const actions = row.insertCell();
    if (client.conn_state === "connected") {
      actions.append(button("Kick", `Kick ${client.client_id}`, () => kick(client.client_id), "danger"));
    }
  }
  if (!body.data.length) emptyRow(tbody, 8, "No clients.");
  showPager("clients", body.meta);
}

async function kick(clientId) {
  if (!window.confirm(`Disconnect client "${clientId}"? Its will message, if any, is published.`)) return;
  await act(() => api(`/clients/${encodeURIComponent(clientId)}`, "DELETE"), refreshClients);
}

async function refreshSubscriptions() {
  const body = await api(`/subscriptions?${query({ _page: pages.subscriptions, _limit: PAGE_SIZE })}`);
  const tbody = $("subscriptions-table").tBodies[0];
  tbody.replaceChildren();
  for (const entry of body.data) {
    const row = tbody.insertRow();
    cell(row, entry.clientid);
    cell(row, entry.topic);
    cell(row, String(entry.qos), "number");
  }
  if (!body.data.length) emptyRow(tbody, 3, "No subscriptions.");
  showPager("subscriptions", body.meta);
}

async function refreshRetained() {
  const body = await api(`/mqtt/retained?${query({ _page: pages.retained, _limit: PAGE_SIZE })}`);
  const tbody = $("retained-table").tBodies[0];
  tbody.replaceChildren();
  for (const message of body.data) {
    const row = tbody.insertRow();
    cell(row, message.topic);
    cell(row, String(message.qos), "number");
    cell(row, number(message.payload_size), "number");
    const actions = row.insertCell();
    actions.className = "actions";
    actions.append(
      button("View", `View ${message.topic}`, () => act(() => viewRetained(message.topic))),
      button("Delete", `Delete ${message.topic}`, () => deleteRetained(message.topic), "danger"),
    );
  }
  if (!body.data.length) emptyRow(tbody, 4, "No retained messages.");
  $("fig-retained").textContent = number(body.meta.count);
  showPager("retained", body.meta);
}

async function viewRetained(topic) {
  const body = await api(`/mqtt/retained/message?${query({ topic })}`);
  const raw = atob(body.data.payload);
  shownPayload = { topic, bytes: Uint8Array.from(raw, (c) => c.charCodeAt(0)) };
  $("payload-topic").textContent = topic;
  $("payload-view").hidden = false;
  showPayload();
}

function showPayload() {
  if (shownPayload === null) return;
  const format = document.querySelector('input[name="payload-format"]:checked').value;
  const data = shownPayload.bytes;
  if (format === "text") {
    $("payload-text").textContent = new TextDecoder("utf-8").decode(data);
    return;
  }
  const lines = [];
  for (let offset = 0; offset < data.length; offset += 16) {
    const chunk = Array.from(data.slice(offset, offset + 16), (b) => b.toString(16).padStart(2, "0"));
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${chunk.join(" ")}`);
  }
  $("payload-text").textContent = lines.join("\n");
}

async function deleteRetained(topic) {
  if (!window.confirm(`Delete the retained message of "${topic}"?`)) return;
  await act(async () => {
    await api(`/mqtt/retained?${query({ topic })}`, "DELETE");
    if (shownPayload !== null && shownPayload.topic === topic) {
      shownPayload = null;
      $("payload-view").hidden = true;
    }
  }, refreshRetained);
}

// ---- topic tree, bridges, store, configuration ----------------------------------------------

async function refreshTopics() {
  const levels = (await api("/topic-tree")).data;
  // Level n+1 lists the children of level n's nodes in order; cld_cnt says how many each has.
  const build = (depth, index) => {
    const node = levels[depth][index];
    const item = document.createElement("li");
    item.append(document.createTextNode(node.topic === "" && depth > 0 ? '""' : node.topic));
    if (node.clientid) {
      const who = document.createElement("span");
      who.className = "subscribers";
      who.textContent = `  ← ${node.clientid.join(", ")}`;
      item.append(who);
    }
    return item;
  };
  const root = $("topic-tree");
  root.replaceChildren();
  if (levels.length < 2 || !levels[0][0].cld_cnt) {
    const item = document.createElement("li");
    item.textContent = "No subscriptions.";
    root.append(item);
    return;
  }
  let parents = [{ list: root, count: levels[0][0].cld_cnt }];
  for (let depth = 1; depth < levels.length; depth += 1) {
    const next = [];
    let index = 0;
    for (const parent of parents) {
      for (let n = 0; n < parent.count && index < levels[depth].length; n += 1, index += 1) {
        const item = build(depth, index);
        parent.list.append(item);
        const count = levels[depth][index].cld_cnt;
        if (count) {
          const children = document.createElement("ul");
          item.append(children);
          next.push({ list: children, count });
        }
      }
    }
    parents = next;
  }
}

async function refreshBridges() {
  const nodes = (await api("/bridges")).data.bridge.nodes;
  const tbody = $("bridges-table").tBodies[0];
  tbody.replaceChildren();
  for (const node of nodes) {
    const row = tbody.insertRow();
    cell(row, node.name);
    cell(row, node.server);
    cell(row, node.state);
    cell(row, number(node.queued), "number");
    cell(row, number(node.forwarded), "number");
    cell(row, number(node.received), "number");
    cell(row, number(node.dropped), "number");
    cell(row, node.last_error || "");
  }
  if (!nodes.length) emptyRow(tbody, 8, "No bridges configured.");
}

function showStore(store) {
  const list = $("store");
  list.replaceChildren();
  const pairs = store ? [
    ["File", store.path], ["Size", bytes(store.file_bytes)], ["Pending writes", number(store.pending_writes)],
    ["Commits", number(store.commits)], ["Last commit", `${(store.last_commit_seconds * 1000).toFixed(1)} ms`],
    ["Write errors", number(store.write_errors)], ["Last error", store.last_error || "none"],
  ] : [["Persistence", "off (no sqlite store configured)"]];
  for (const [name, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
}

async function refreshConfiguration() {
  const body = await api("/configuration");
  $("config-text").textContent = JSON.stringify(body.data, null, 2);
}

async function restart() {
  if (!window.confirm("Restart the broker's MQTT side? Every client is disconnected and reconnects.")) return;
  await act(() => api("/ctrl/restart", "POST"));
  $("status").textContent = "Restart requested…";
}

// ---- panels and polling ---------------------------------------------------------------------

const PANELS = {
  overview: null, clients: refreshClients, subscriptions: refreshSubscriptions, topics: refreshTopics,
  retained: refreshRetained, bridges: refreshBridges, configuration: refreshConfiguration,
};
const POLLED = new Set(["clients", "subscriptions", "topics", "retained", "bridges"]);

function currentPanel() {
  const name = location.hash.slice(1);
  return Object.hasOwn(PANELS, name) ? name : "overview";
}

// Run a user action, show its error if it fails, then refresh what it changed.
async function act(action, refresh) {
  try {
    await action();
    if (refresh) await refresh();
    clearError();
  } catch (error) {
    showError(error);
  }
}

async function poll() {
  timer = null;
  if (document.visibilityState !== "hidden") {
    const panel = currentPanel();
    const work = [api("/metrics").then(showMetrics)];
    if (tick % SLOW_EVERY === 0) work.push(refreshSlow());
    if (POLLED.has(panel) && tick > 0) work.push(PANELS[panel]());
    tick += 1;
    const results = await Promise.allSettled(work);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) showError(failed.reason); else clearError();
    document.body.dataset.polls = String(tick);   // lets tests wait for a completed poll
  }
  timer = setTimeout(poll, POLL_MS);
}

function showPanel() {
  const panel = currentPanel();
  for (const name of Object.keys(PANELS)) $(name).hidden = name !== panel;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.hash === `#${panel}`) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (PANELS[panel]) act(PANELS[panel]);
  else drawChart();
}

function start() {
  window.addEventListener("hashchange", showPanel);
  window.addEventListener("resize", drawChart);
  $("client-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    clientFilters = Object.fromEntries(new FormData(event.target).entries());
    pages.clients = 1;
    act(refreshClients);
  });
  for (const pager of document.querySelectorAll(".pager")) {
    const name = pager.dataset.for;
    for (const b of pager.querySelectorAll("button")) {
      b.addEventListener("click", () => {
        pages[name] = Math.max(1, pages[name] + Number(b.dataset.step));
        act(PANELS[name]);
      });
    }
  }
  for (const radio of document.querySelectorAll('input[name="payload-format"]')) radio.addEventListener("change", showPayload);
  $("restart").addEventListener("click", restart);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer !== null) { clearTimeout(timer); poll(); }
  });
  showPanel();
  poll();
}

start();
