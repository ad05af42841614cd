// The supervisor page: GET /api/v1/supervisor (agents, live calls, queues) refetched on
// every event of the live stream (/api/v1/events, Server-Sent Events; 150 ms debounce, one
// fetch in flight) and every 5 s; durations count up locally each second. Actions post to
// the API with the page's CSRF token. No library, no build step.
(function () {
  "use strict";
  var root = document.getElementById("sup");
  var S = JSON.parse(document.getElementById("sup-strings").textContent);
  var REASONS = JSON.parse(document.getElementById("sup-reasons").textContent);
  var csrf = root.dataset.csrf;
  var snap = null, fetchedAt = 0, inFlight = false, again = false, timer = null;

  function dur(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + (sec < 10 ? "0" : "") + sec;
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") e.className = attrs[k]; else if (k === "disabled") e.disabled = !!attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function td(text, attrs) { return el("td", attrs, text); }
  function flash(text) { document.getElementById("sup-flash").textContent = text; }

  function post(url, body, what) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" }, body: JSON.stringify(body || {}) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          flash(r.ok ? S.done + " " + what : S.failed + " " + (j.error || r.status));
          refresh();
        });
      });
  }

  function button(label, cls, onclick, disabled, title) {
    var b = el("button", { type: "button", "class": cls, disabled: disabled }, label);
    if (title) { b.title = title; b.setAttribute("aria-label", title); }
    if (onclick) b.addEventListener("click", onclick);
    return b;
  }

  function renderQueues() {
    var tb = document.querySelector("#queues-table tbody");
    tb.textContent = "";
    snap.queues.forEach(function (q) {
      var tr = el("tr", { "data-queue": q.queue, "data-closed": q.closed ? "1" : "0" });
      tr.appendChild(td(q.queue));
      tr.appendChild(td(q.closed ? S.closed : S.open, { "class": q.closed ? "queue-closed q-status" : "queue-open q-status" }));
      tr.appendChild(td(q.waiting, { "class": "q-waiting" }));
      tr.appendChild(td(q.agents));
      tr.appendChild(td(q.closed_to || S.no_dest));
      var act = td(null, { "class": "actions" });
      if (q.closed) {
        act.appendChild(button(S.reopen, "q-open", function () {
          post("/api/v1/queues/" + encodeURIComponent(q.queue) + "/open", {}, S.reopen + " " + q.queue);
        }));
      } else {
        act.appendChild(button(S.close, "q-close", function () {
          post("/api/v1/queues/" + encodeURIComponent(q.queue) + "/close", {}, S.close + " " + q.queue);
        }, !q.closed_to, q.closed_to ? null : S.no_dest));
      }
      tr.appendChild(act);
      tb.appendChild(tr);
    });
  }

  function renderAgents(extra) {
    var tb = document.querySelector("#agents-table tbody");
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("tr[data-agent]");
    if (focused && focused.querySelector("select") === document.activeElement) return;  // keep an open reason list
    tb.textContent = "";
    snap.agents.forEach(function (a) {
      var tr = el("tr", { "data-agent": a.id, "data-state": a.state });
      tr.appendChild(td(a.name ? a.name + " (" + a.id + ")" : a.id));
      tr.appendChild(td(a.extension || "–"));
      var st = td(null);
      var label = S.states[a.state] || a.state;
      if (a.state === "paused" && a.pause_reason) label += " · " + (S.reasons[a.pause_reason] || a.pause_reason);
      st.appendChild(el("span", { "class": "state a-state state-" + a.state }, label));
      tr.appendChild(st);
      tr.appendChild(td(a.since === null ? "–" : dur(a.since + extra), { "class": "a-since" }));
      tr.appendChild(td(a.queues.length ? a.queues.join(", ") : "–"));
      tr.appendChild(td(a.call ? a.call.caller + (a.call.queue ? " · " + a.call.queue : "") + " · " + dur(a.call.duration + extra) : "–",
                        { "class": "a-call" }));
      var act = td(null, { "class": "actions" });
      var base = "/api/v1/agents/" + encodeURIComponent(a.id);
      if (a.state === "logged_out") {
        act.appendChild(el("span", { "class": "muted" }, "–"));
      } else if (a.state === "paused") {
        act.appendChild(button(S.unpause, "a-unpause", function () { post(base + "/unpause", {}, S.unpause + " " + a.id); }));
      } else {
        var sel = el("select", { "class": "a-reason", "aria-label": S.pause + " " + a.id });
        REASONS.forEach(function (r) { sel.appendChild(el("option", { value: r }, S.reasons[r] || r)); });
        act.appendChild(sel);
        act.appendChild(button(S.pause, "a-pause", function () {
          post(base + "/pause", { reason: sel.value }, S.pause + " " + a.id);
        }));
      }
      if (a.state !== "logged_out") {
        act.appendChild(button(S.logout, "a-logout", function () { post(base + "/logout", {}, S.logout + " " + a.id); }));
      }
      tr.appendChild(act);
      tb.appendChild(tr);
    });
  }

  function renderCalls(extra) {
    var tb = document.querySelector("#calls-table tbody");
    tb.textContent = "";
    document.getElementById("no-calls").hidden = snap.calls.length > 0;
    snap.calls.forEach(function (c) {
      var tr = el("tr", { "data-call": c.id });
      tr.appendChild(td(c.caller));
      tr.appendChild(td(c.callee));
      tr.appendChild(td(c.queue || "–"));
      tr.appendChild(td(c.agent || "–"));
      tr.appendChild(td(c.state));
      tr.appendChild(td(dur(c.duration + extra), { "class": "c-duration" }));
      var act = td(null, { "class": "actions" });
      [S.listen, S.whisper, S.barge].forEach(function (l) { act.appendChild(button(l, "c-monitor", null, true, l + ": " + S.soon)); });
      tr.appendChild(act);
      tb.appendChild(tr);
    });
  }

  function render(all) {
    if (!snap) return;
    var extra = Date.now() / 1000 - fetchedAt;
    if (all) { renderQueues(); renderAgents(extra); renderCalls(extra); return; }
    // tick: durations only
    document.querySelectorAll("#agents-table tr[data-agent]").forEach(function (tr, i) {
      var a = snap.agents[i]; if (!a) return;
      tr.querySelector(".a-since").textContent = a.since === null ? "–" : dur(a.since + extra);
    });
    document.querySelectorAll("#calls-table tr[data-call]").forEach(function (tr, i) {
      var c = snap.calls[i]; if (c) tr.querySelector(".c-duration").textContent = dur(c.duration + extra);
    });
  }

  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch("/api/v1/supervisor", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (j) { snap = j; fetchedAt = Date.now() / 1000; root.dataset.loaded = "1"; render(true); })
      .catch(function () {})
      .then(function () { inFlight = false; if (again) { again = false; refresh(); } });
  }
  function soon() { if (timer) return; timer = setTimeout(function () { timer = null; refresh(); }, 150); }

  var status = document.getElementById("sup-status");
  // the stream's events that change what this page shows (pypbx.events)
  var EVENTS = ["agent.state_changed", "call.offered", "call.ringing", "call.answered", "call.ended", "call.held",
                "call.transferred", "queue.entered", "queue.connected", "queue.abandoned", "queue.overflowed",
                "queue.step", "callback.dialled"];
  function connect() {
    var es = new EventSource("/api/v1/events");
    es.onopen = function () { status.textContent = S.live; root.dataset.live = "1"; refresh(); };
    es.onmessage = soon;
    EVENTS.forEach(function (n) { es.addEventListener(n, soon); });
    es.onerror = function () { status.textContent = S.reconnecting; root.dataset.live = "0"; };
    es.addEventListener("gap", soon);
    es.addEventListener("dropped", function () { es.close(); setTimeout(connect, 1000); });
  }
  refresh();
  connect();
  setInterval(refresh, 5000);
  setInterval(function () { render(false); }, 1000);
})();
