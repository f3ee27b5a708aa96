// The list panels (clients, subscriptions, topic tree, retained messages, bridges and store,
// configuration): each refresh function asks the API for what its panel shows.

import {
  $, act, api, button, bytes, cell, clearActionError, emptyRow, keepFocus, number, query, setText, showActionError,
} from "./common.js";

const PAGE_SIZE = 20;
const pages = { clients: 1, subscriptions: 1, retained: 1 };
let clientFilters = {};          // the filter form's values as of its last submit
let shownPayload = null;         // {topic, size, bytes} of the retained message shown
const PAYLOAD_SHOWN = 64 * 1024; // bytes of a payload rendered: a megabyte of text or hex stalls the tab
const TREE_SHOWN = 2000;         // topic tree nodes rendered
const issued = {};               // per panel: the number of its latest request

// A ticket for a panel's request: true while no newer request of that panel has been made.
function newest(name) {
  issued[name] = (issued[name] || 0) + 1;
  const mine = issued[name];
  return () => issued[name] === mine;
}

// ---- paged tables ---------------------------------------------------------------------------

function showPager(name, meta) {
  const pager = document.querySelector(`.pager[data-for="${name}"]`);
  const last = Math.max(1, Math.ceil(meta.count / meta.limit));
  setText(pager.querySelector("span"), `Page ${meta.page} of ${last} (${number(meta.count)})`);
  pager.querySelector('[data-step="-1"]').disabled = meta.page <= 1;
  pager.querySelector('[data-step="1"]').disabled = meta.page >= last;
}

export async function refreshClients() {
  const current = newest("clients");
  const body = await api(`/clients?${query({ ...clientFilters, _page: pages.clients, _limit: PAGE_SIZE })}`);
  if (!current()) return;
  const tbody = $("clients-table").tBodies[0];
  keepFocus(tbody, () => showClients(tbody, body.data));
  showPager("clients", body.meta);
}

function showClients(tbody, clients) {
  tbody.replaceChildren();
  for (const client of clients) {
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
  if (!clients.length) emptyRow(tbody, 8, "No clients.");
}

// Browsers resolve "." and ".." in a URL's path, even written %2E, so these ids cannot be sent.
const UNADDRESSABLE = new Set([".", ".."]);

async function kick(clientId) {
  if (UNADDRESSABLE.has(clientId)) {
    clearActionError();
    showActionError(new Error(`client id "${clientId}" cannot be sent from a browser (it resolves as a path); `
      + "kick it with an HTTP client that sends the path as is (curl --path-as-is)"));
    return;
  }
  if (!window.confirm(`Disconnect client "${clientId}"? Its will message, if any, is published.`)) return;
  await act(() => api(`/clients/${encodeURIComponent(clientId)}`, "DELETE"), refreshClients);
}

export async function refreshSubscriptions() {
  const current = newest("subscriptions");
  const body = await api(`/subscriptions?${query({ _page: pages.subscriptions, _limit: PAGE_SIZE })}`);
  if (!current()) return;
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

export async function refreshRetained() {
  const current = newest("retained");
  const body = await api(`/mqtt/retained?${query({ _page: pages.retained, _limit: PAGE_SIZE })}`);
  if (!current()) return;
  const tbody = $("retained-table").tBodies[0];
  keepFocus(tbody, () => showRetained(tbody, body.data));
  $("fig-retained").textContent = number(body.meta.count);
  showPager("retained", body.meta);
}

function showRetained(tbody, messages) {
  tbody.replaceChildren();
  for (const message of messages) {
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
  if (!messages.length) emptyRow(tbody, 4, "No retained messages.");
}

async function viewRetained(topic) {
  const body = await api(`/mqtt/retained/message?${query({ topic, max_bytes: PAYLOAD_SHOWN })}`);
  const size = body.data.payload_size;
  const raw = atob(body.data.payload);
  const shown = raw.length > PAYLOAD_SHOWN ? raw.slice(0, PAYLOAD_SHOWN) : raw;
  shownPayload = { topic, size, bytes: Uint8Array.from(shown, (c) => c.charCodeAt(0)) };
  const note = $("payload-note");
  note.textContent = `Showing the first 64 KB of ${number(size)} bytes.`;
  note.hidden = size <= PAYLOAD_SHOWN;
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
      $("payload-note").hidden = true;
    }
  }, refreshRetained);
}

// ---- topic tree, bridges, store, configuration ----------------------------------------------

export async function refreshTopics() {
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
  const total = levels.slice(1).reduce((sum, level) => sum + level.length, 0);
  $("topic-count").textContent = total > TREE_SHOWN
    ? `Showing the first ${number(TREE_SHOWN)} of ${number(total)} topic levels, level by level.`
    : `${number(total)} topic levels.`;
  if (levels.length < 2 || !levels[0][0].cld_cnt) {
    const item = document.createElement("li");
    item.textContent = "No subscriptions.";
    root.append(item);
    return;
  }
  let parents = [{ list: root, count: levels[0][0].cld_cnt }];
  let shown = 0;
  for (let depth = 1; depth < levels.length && shown < TREE_SHOWN; depth += 1) {
    const next = [];
    let index = 0;
    for (const parent of parents) {
      for (let n = 0; n < parent.count && index < levels[depth].length && shown < TREE_SHOWN; n += 1, index += 1) {
        shown += 1;
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

export async function refreshBridges() {
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

export function showStore(store) {
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

export async function refreshConfiguration() {
  const body = await api("/configuration");
  $("config-text").textContent = JSON.stringify(body.data, null, 2);
}

async function restart() {
  if (!window.confirm("Restart the broker's MQTT side? Every client is disconnected and reconnects.")) return;
  if (await act(() => api("/ctrl/restart", "POST"))) $("status").textContent = "Restart requested…";
}

// The panels' own controls: the client filter, the pagers, the payload format, Restart.
export function wirePanels() {
  const refresh = { clients: refreshClients, subscriptions: refreshSubscriptions, retained: refreshRetained };
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
        act(refresh[name]);
      });
    }
  }
  for (const radio of document.querySelectorAll('input[name="payload-format"]')) radio.addEventListener("change", showPayload);
  $("restart").addEventListener("click", restart);
  $("topics-refresh").addEventListener("click", () => act(refreshTopics));
  $("action-error-dismiss").addEventListener("click", clearActionError);
}
