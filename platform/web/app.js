// iotgw platform emulator page: plain JS, no build step, no external files.
"use strict";

const MAX_POINTS = 200;   // points kept per key for the charts
const MAX_LOG = 60;       // event lines kept
const devices = new Map(); // name -> Device from /api/devices
const series = new Map();  // key -> [{ts, value}] of the selected device
let selected = null;
let attrs = { client: {}, shared: {} };
let drawPending = false;

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const enc = encodeURIComponent;

async function api(path, opts) {
  const res = await fetch(path, opts);
  let body = null;
  try { body = await res.json(); } catch (_) { /* empty body */ }
  return { ok: res.ok, status: res.status, body };
}

function fmtValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, "");
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}
function fmtTime(t) {
  const d = new Date(t);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}
function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function parseLoose(s) {
  // JSON when it parses (25, true, {"a":1}), else the text as a string.
  try { return JSON.parse(s); } catch (_) { return s; }
}

function renderDevices() {
  const ul = $("devices");
  ul.replaceChildren();
  const names = [...devices.keys()].sort();
  $("device-count").textContent = names.length;
  $("no-devices").hidden = names.length > 0;
  for (const name of names) {
    const d = devices.get(name);
    const li = el("li");
    li.dataset.device = name;
    if (name === selected) li.classList.add("selected");
    li.append(el("span", "dot" + (d.connected ? " on" : "")), el("span", "name", name),
      el("span", "sub", d.type + " · " + (d.connected ? "connected" : "disconnected") + " · " + ago(d.lastSeen)));
    li.onclick = () => select(name);
    ul.append(li);
  }
}

function renderHeader() {
  const d = devices.get(selected);
  if (!d) return;
  $("dev-name").textContent = d.name;
  const b = $("dev-status");
  b.textContent = d.connected ? "connected" : "disconnected";
  b.className = "badge" + (d.connected ? " on" : "");
  $("dev-info").textContent = "type " + d.type + (d.gateway ? " · via " + d.gateway : "");
}

function renderAttrs() {
  const tb = $("attrs").querySelector("tbody");
  tb.replaceChildren();
  for (const scope of ["client", "shared"]) {
    for (const k of Object.keys(attrs[scope] || {}).sort()) {
      const tr = el("tr");
      tr.append(el("td", "", scope), el("td", "", k), el("td", "", fmtValue(attrs[scope][k])));
      tb.append(tr);
    }
  }
  if (!tb.children.length) {
    const tr = el("tr");
    const td = el("td", "", "none yet");
    td.colSpan = 3;
    tr.append(td);
    tb.append(tr);
  }
}

function metricCard(key) {
  let card = document.querySelector(`.metric[data-key="${CSS.escape(key)}"]`);
  if (card) return card;
  card = el("div", "metric");
  card.dataset.key = key;
  card.append(el("div", "key", key), el("div", "value"), el("canvas"), el("div", "when"));
  const box = $("metrics");
  const after = [...box.children].find((c) => c.dataset.key > key);
  box.insertBefore(card, after || null);
  return card;
}

function drawChart(canvas, points) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) {
    canvas.width = w * dpr;
    canvas.height = h * dpr;
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const nums = points.map((p) => Number(p.value)).filter((v) => Number.isFinite(v));
  if (nums.length < 2 || nums.length !== points.length) {
    g.fillStyle = "#9aa3b2";
    g.font = "11px system-ui";
    g.fillText(nums.length === points.length ? "waiting for more values…" : "not a number", 2, h / 2);
    return;
  }
  let lo = Math.min(...nums), hi = Math.max(...nums);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = 4;
  const x = (i) => (i / (nums.length - 1)) * (w - 2);
  const y = (v) => pad + (1 - (v - lo) / (hi - lo)) * (h - 2 * pad - 10);
  g.beginPath();
  nums.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.strokeStyle = "#2f6fed";
  g.lineWidth = 1.6;
  g.lineJoin = "round";
  g.stroke();
  g.lineTo(x(nums.length - 1), h - 10);
  g.lineTo(0, h - 10);
  g.closePath();
  const grad = g.createLinearGradient(0, 0, 0, h);
  grad.addColorStop(0, "rgba(47,111,237,.22)");
  grad.addColorStop(1, "rgba(47,111,237,0)");
  g.fillStyle = grad;
  g.fill();
  g.fillStyle = "#6b7485";
  g.font = "10px system-ui";
  g.fillText("min " + fmtValue(Math.min(...nums)) + "   max " + fmtValue(Math.max(...nums)), 0, h - 1);
}

function renderMetrics() {
  drawPending = false;
  $("no-metrics").hidden = series.size > 0;
  for (const [key, pts] of series) {
    const card = metricCard(key);
    const last = pts[pts.length - 1];
    card.querySelector(".value").textContent = fmtValue(last.value);
    card.querySelector(".when").textContent = fmtTime(last.ts);
    drawChart(card.querySelector("canvas"), pts);
  }
}
function scheduleDraw() {
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(renderMetrics);
  }
}

async function select(name) {
  selected = name;
  series.clear();
  $("metrics").replaceChildren();
  $("pick").hidden = true;
  $("device-view").hidden = false;
  $("rpc-reply").textContent = "";
  $("rpc-status").textContent = "";
  $("attr-status").textContent = "";
  renderDevices();
  renderHeader();
  const [t, a] = await Promise.all([
    api(`/api/devices/${enc(name)}/telemetry?limit=${MAX_POINTS}`),
    api(`/api/devices/${enc(name)}/attributes`),
  ]);
  if (selected !== name) return;
  if (t.ok) for (const [k, pts] of Object.entries(t.body)) series.set(k, pts);
  if (a.ok) attrs = a.body;
  renderAttrs();
  scheduleDraw();
}

function log(kind, device, text) {
  const ol = $("log");
  const li = el("li");
  li.append(el("span", "t", new Date().toLocaleTimeString()), el("span", "k", kind), el("span", "", device + "  " + text));
  ol.prepend(li);
  while (ol.children.length > MAX_LOG) ol.lastChild.remove();
}

function onEvent(e) {
  switch (e.type) {
    case "device":
      devices.set(e.device, e.data);
      renderDevices();
      if (e.device === selected) renderHeader();
      if (!selected && e.data.type !== "gateway") select(e.device);
      if (e.device === selected || e.data.type !== "gateway") log("device", e.device, e.data.connected ? "connected" : "disconnected");
      break;
    case "telemetry": {
      const d = devices.get(e.device);
      if (d) d.lastSeen = new Date().toISOString();
      if (e.device !== selected) break;
      for (const [k, v] of Object.entries(e.data.values)) {
        if (!series.has(k)) series.set(k, []);
        const pts = series.get(k);
        pts.push({ ts: e.data.ts, value: v });
        if (pts.length > MAX_POINTS) pts.splice(0, pts.length - MAX_POINTS);
      }
      scheduleDraw();
      break;
    }
    case "attributes":
      if (e.device === selected) {
        attrs[e.data.scope] = Object.assign(attrs[e.data.scope] || {}, e.data.data);
        renderAttrs();
      }
      log("attributes", e.device, e.data.scope + " " + JSON.stringify(e.data.data));
      break;
    case "rpc":
      log("rpc →", e.device, e.data.method + "(" + JSON.stringify(e.data.params) + ") id " + e.data.id);
      break;
    case "rpc_reply":
      log("rpc ←", e.device, "id " + e.data.id + " " + JSON.stringify(e.data.data));
      break;
  }
}

function connectEvents() {
  const es = new EventSource("/api/events");
  es.onopen = () => {
    $("stream").querySelector(".dot").classList.add("on");
    $("stream-text").textContent = "live";
  };
  es.onerror = () => {
    $("stream").querySelector(".dot").classList.remove("on");
    $("stream-text").textContent = "reconnecting";
  };
  es.onmessage = (m) => onEvent(JSON.parse(m.data));
}

$("attr-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const st = $("attr-status");
  const body = { [$("attr-key").value]: parseLoose($("attr-value").value) };
  st.className = "status";
  st.textContent = "sending…";
  const r = await api(`/api/devices/${enc(selected)}/attributes`, { method: "POST", body: JSON.stringify(body) });
  st.className = "status " + (r.ok ? "ok" : "err");
  st.textContent = r.ok ? "sent " + JSON.stringify(body) : "error " + r.status + ": " + (r.body && r.body.error);
};

$("rpc-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const st = $("rpc-status"), out = $("rpc-reply"), btn = $("rpc-send");
  const raw = $("rpc-params").value.trim();
  const body = { method: $("rpc-method").value, params: raw === "" ? {} : parseLoose(raw),
    timeoutMs: Number($("rpc-timeout").value) || 10000 };
  st.className = "status";
  st.textContent = "waiting for the reply…";
  out.textContent = "";
  btn.disabled = true;
  const t0 = performance.now();
  try {
    const r = await api(`/api/devices/${enc(selected)}/rpc`, { method: "POST", body: JSON.stringify(body) });
    const ms = Math.round(performance.now() - t0);
    st.className = "status " + (r.ok ? "ok" : "err");
    st.textContent = (r.ok ? "reply to id " + r.body.id : "error " + r.status) + " in " + ms + " ms";
    out.textContent = JSON.stringify(r.ok ? r.body.data : r.body, null, 2);
  } catch (e) {
    st.className = "status err";
    st.textContent = String(e);
  } finally {
    btn.disabled = false;
  }
};

let lastStats = null;
async function pollStats() {
  const r = await api("/api/stats");
  if (!r.ok) return;
  const now = performance.now();
  if (lastStats) {
    const dt = (now - lastStats.at) / 1000;
    const msg = (r.body.messages - lastStats.s.messages) / dt;
    const val = (r.body.values - lastStats.s.values) / dt;
    $("rates").textContent = fmtValue(Math.round(msg * 10) / 10) + " msg/s · " + fmtValue(Math.round(val * 10) / 10) + " values/s";
  }
  lastStats = { at: now, s: r.body };
}

async function init() {
  const info = await api("/api/info");
  if (info.ok) $("mqtt-addr").textContent = "MQTT " + info.body.mqtt;
  connectEvents();
  const r = await api("/api/devices");
  if (r.ok) for (const d of r.body) devices.set(d.name, d);
  renderDevices();
  const first = [...devices.values()].sort((a, b) => a.name.localeCompare(b.name)).find((d) => d.type !== "gateway");
  if (first && !selected) select(first.name);
  setInterval(renderDevices, 5000); // keeps "x s ago" fresh
  pollStats();
  setInterval(pollStats, 2000);
}
init();
