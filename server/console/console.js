// The wsgate console: live figures from /console/stats.json and a request box that talks to the gateway
// over a WebSocket, as any client would. No build step, no dependencies.
"use strict";

// An admin token, if the admin listener needs one, is passed in the page's fragment: #token=...
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
let previous = null;
let socket = null;
let socketURL = null;
const waiting = [];

function fmtAge(ms) {
  if (!ms) return "–";
  if (ms < 1000) return ms.toFixed(0) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return (ms / 60000).toFixed(1) + " min";
}

async function refresh() {
  try {
    const res = await fetch("stats.json", { headers, cache: "no-store" });
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    const s = await res.json();
    $("status").textContent = s.ready ? "ready" : "not ready: " + s.not_ready;
    $("status").className = s.ready ? "status" : "status down";
    $("connections").textContent = s.connections;
    $("pending").textContent = s.pending_jobs;
    $("timeouts").textContent = s.timeouts;
    if (previous) {
      const dt = (s.at_ms - previous.at_ms) / 1000;
      const n = s.requests - previous.requests;
      $("rps").textContent = dt > 0 ? (n / dt).toFixed(1) : "–";
      $("latency").textContent = n > 0 ? ((s.latency_sum_ms - previous.latency_sum_ms) / n).toFixed(2) + " ms" : "–";
    }
    previous = s;
    const body = $("queues").tBodies[0];
    body.replaceChildren(...s.queues.map((q) => {
      const tr = document.createElement("tr");
      const cells = [q.name, q.list, q.pending, q.processing, q.dead, fmtAge(q.oldest_pending_ms), q.live_workers,
        q.jobs_per_second.toFixed(1), q.unserved ? "no worker!" : ""];
      for (const c of cells) {
        const td = document.createElement("td");
        td.textContent = c;
        tr.appendChild(td);
      }
      if (q.unserved) tr.lastChild.className = "warn";
      return tr;
    }));
    socketURL = (location.protocol === "https:" ? "wss://" : "ws://") + location.hostname + ":" + s.websocket_port + s.websocket_path;
    $("ws-url").textContent = socketURL;
  } catch (e) {
    $("status").textContent = "admin listener unreachable: " + e.message;
    $("status").className = "status down";
  }
}

function show(text) {
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: show as is */ }
  $("reply").textContent = shown;
}

function send(text) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(text);
    return;
  }
  waiting.push(text);
  if (socket && socket.readyState === WebSocket.CONNECTING) return;
  socket = new WebSocket(socketURL);
  socket.onopen = () => { while (waiting.length) socket.send(waiting.shift()); };
  socket.onmessage = (ev) => show(ev.data);
  socket.onclose = (ev) => { if (ev.code !== 1000) show("connection closed: " + ev.code + " " + ev.reason); };
  socket.onerror = () => show("could not connect to " + socketURL);
}

$("request-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!socketURL) await refresh();
  $("reply").textContent = "…";
  send($("request").value);
});

refresh();
setInterval(refresh, 2000);
