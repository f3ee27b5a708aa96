// The list panels (clients, subscriptions, topic tree, retained messages, bridges and store,
// configuration): each refresh function asks the API for what its panel shows.

import { $, act, api, button, bytes, cell, emptyRow, number, query, showError } from "./common.js";

const PAGE_SIZE = 20;
const pages = { clients: 1, subscriptions: 1, retained: 1 };
let clientFilters = {};          // the filter form's values as of its last submit
let shownPayload = null;         // {topic, bytes} of the retained message shown

// ---- paged tables ---------------------------------------------------------------------------

function showPager(name, meta) {
  const pager = document.querySelector(`.pager[data-for="${name}"]`);
  const last = Math.max(1, Math.ceil(meta.count / meta.limit));
  pager.querySelector("span").textContent = `Page ${meta.page} of ${last} (${number(meta.count)})`;
  pager.querySelector('[data-step="-1"]').disabled = meta.page <= 1;
  pager.querySelector('[data-step="1"]').disabled = meta.page >= last;
}

export async function refreshClients() {
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

// Browsers resolve "." and ".." in a URL's path, even written %2E, so these ids cannot be sent.
const UNADDRESSABLE = new Set([".", ".."]);

async function kick(clientId) {
  if (UNADDRESSABLE.has(clientId)) {
    showError(new Error(`client id "${clientId}" cannot be sent from a browser (it resolves as a path); `
      + "kick it with an HTTP client that sends the path as is (curl --path-as-is)"));
    return;
  }
  if (!window.confirm(`Disconnect client "${clientId}"? Its will message, if any, is published.`)) return;
  await act(() => api(`/clients/${encodeURIComponent(clientId)}`, "DELETE"), refreshClients);
}

export async function refreshSubscriptions() {
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

export async function refreshRetained() {
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
  await act(() => api("/ctrl/restart", "POST"));
  $("status").textContent = "Restart requested…";
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
}
