// The wallboard: GET /api/v1/board (a snapshot) and the live event stream
// (/api/v1/events, Server-Sent Events): every event refetches the snapshot (at most
// one fetch in flight, 100 ms debounce); the waits count up locally each second;
// EventSource reconnects by itself (resuming with Last-Event-ID) and a 5 s poll
// covers a stream that is down. No library, no build step.
(function () {
  "use strict";
  var root = document.getElementById("board");
  var strings = JSON.parse(document.getElementById("board-strings").textContent);
  var token = root.dataset.token;
  var warn = Number(root.dataset.warn), alarm = Number(root.dataset.alarm);
  var q = token ? "?token=" + encodeURIComponent(token) : "";
  var snap = null, fetchedAt = 0, inFlight = false, again = false, timer = null;

  function fmtDur(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.floor(s));
    var m = Math.floor(s / 60), sec = s % 60;
    if (m >= 60) return strings.hour.replace("{n}", Math.floor(m / 60)) + " " + strings.minute.replace("{n}", m % 60);
    return m + ":" + (sec < 10 ? "0" : "") + sec;
  }
  function fmtPct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + " %"; }
  function level(wait) { return wait >= alarm ? "alarm" : wait >= warn ? "warn" : "ok"; }
  function set(el, text) { if (el.textContent !== String(text)) el.textContent = String(text); }

  function render() {
    if (!snap) return;
    var extra = (Date.now() / 1000) - fetchedAt;
    set(document.getElementById("t-in-progress"), snap.today.in_progress);
    set(document.getElementById("t-offered"), snap.today.offered);
    set(document.getElementById("t-answered"), snap.today.answered);
    set(document.getElementById("t-abandoned"), snap.today.abandoned);
    set(document.getElementById("t-missed"), snap.missed_open);
    set(document.getElementById("t-missed-oldest"),
        snap.missed_oldest === null ? "" : strings.oldest + " " + fmtDur(snap.missed_oldest + extra));
    var box = document.getElementById("queues");
    var tpl = document.getElementById("queue-tpl");
    var seen = {};
    snap.queues.forEach(function (qs) {
      seen[qs.queue] = true;
      var el = box.querySelector('article[data-queue="' + CSS.escape(qs.queue) + '"]');
      if (!el) {
        el = tpl.content.firstElementChild.cloneNode(true);
        el.dataset.queue = qs.queue;
        el.querySelector(".qname").textContent = qs.queue;
        box.appendChild(el);
      }
      var longest = qs.waiting ? qs.longest_wait + extra : 0;
      el.dataset.level = qs.waiting ? level(longest) : "ok";
      set(el.querySelector(".q-waiting"), qs.waiting);
      set(el.querySelector(".q-longest"), qs.waiting ? fmtDur(longest) : "–");
      ["available", "on_call", "wrap_up", "paused", "logged_out"].forEach(function (k) {
        var n = qs.agents[k] || 0;
        if (k === "on_call") n += qs.agents.ringing || 0;
        set(el.querySelector(".q-" + k), n);
      });
      set(el.querySelector(".paused-list"), qs.paused.map(function (p) {
        return (p.name || p.agent) + " (" + (p.reason || "-") + ")";
      }).join(" · "));
      set(el.querySelector(".q-offered"), qs.today.offered);
      set(el.querySelector(".q-answered"), qs.today.answered);
      set(el.querySelector(".q-abandoned"), qs.today.abandoned);
      set(el.querySelector(".q-sl"), fmtPct(qs.today.service_level));
      set(el.querySelector(".q-missed"), qs.missed_open);
      set(el.querySelector(".q-missed-oldest"),
          qs.missed_oldest === null ? "" : strings.oldest + " " + fmtDur(qs.missed_oldest + extra));
    });
    Array.prototype.forEach.call(box.querySelectorAll("article"), function (el) {
      if (!seen[el.dataset.queue]) el.remove();
    });
    if (!snap.queues.length) set(box, strings.none);
    root.dataset.seq = snap.seq;
  }

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch("/api/v1/board" + q, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location = "/login?next=/board"; throw new Error("logged out"); }
        return r.json();
      })
      .then(function (data) { snap = data; fetchedAt = Date.now() / 1000; render(); })
      .catch(function () { set(document.getElementById("board-status"), strings.offline); })
      .then(function () { inFlight = false; if (again) { again = false; refresh(); } });
  }
  function soon() { if (!timer) timer = setTimeout(function () { timer = null; refresh(); }, 100); }

  function connect() {
    var es = new EventSource("/api/v1/events" + q);
    var status = document.getElementById("board-status");
    es.onopen = function () { set(status, strings.live); root.dataset.live = "1"; refresh(); };
    es.onmessage = soon;
    ["queue.entered", "queue.connected", "queue.abandoned", "queue.overflowed", "queue.step",
     "agent.state_changed", "call.offered", "call.ringing", "call.answered", "call.ended",
     "callback.requested", "callback.closed", "missed.opened", "missed.merged", "missed.claimed",
     "missed.closed", "gap"].forEach(function (name) { es.addEventListener(name, soon); });
    es.addEventListener("dropped", function () { es.close(); setTimeout(connect, 500); });
    es.onerror = function () { set(status, strings.reconnecting); root.dataset.live = "0"; };
  }

  refresh();
  connect();
  setInterval(render, 1000);
  setInterval(refresh, 5000);
})();
