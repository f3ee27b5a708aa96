// edgemq dashboard: polls the admin API's v4 endpoints (same origin, the browser's Basic
// credentials) and renders them. No framework; every value from the broker is set as text.
// This module: the overview (figures and rate chart), the panel switch and the polling.

import { $, act, api, bytes, clearError, number, showError } from "./common.js";
import {
  refreshBridges, refreshClients, refreshConfiguration, refreshRetained, refreshSubscriptions, refreshTopics,
  showStore, wirePanels,
} from "./panels.js";

const POLL_MS = 2000;            // one /metrics request per poll, plus the visible list panel
const SLOW_EVERY = 5;            // version, uptime, listeners and the retained count: every 10 s
const HISTORY = 150;             // rate samples kept: five minutes at one per poll

const history = [];              // {t, in, out} message rates per second
let previous = null;             // the last /metrics answer with its time, for the rates
let tick = 0;
let timer = null;

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

// ---- panels and polling ---------------------------------------------------------------------

const PANELS = {
  overview: null, clients: refreshClients, subscriptions: refreshSubscriptions, topics: refreshTopics,
  retained: refreshRetained, bridges: refreshBridges, configuration: refreshConfiguration,
};
// The topic tree is not polled: with 20 000 filters it is megabytes per answer (it has a Refresh button).
const POLLED = new Set(["clients", "subscriptions", "retained", "bridges"]);

function currentPanel() {
  const name = location.hash.slice(1);
  return Object.hasOwn(PANELS, name) ? name : "overview";
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
  wirePanels();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer !== null) { clearTimeout(timer); poll(); }
  });
  showPanel();
  poll();
}

start();
