// The agent desk: GET /api/v1/agents/<id>/call (state, call, last calls) and
// GET /api/v1/missed (the worklist), refetched when the live event stream
// (/api/v1/events, Server-Sent Events) says something changed — at most one fetch
// of each in flight, 150 ms debounce, events about other agents ignored; a 15 s
// poll only while the stream is down. Every action is a POST to /api/v1/ with the
// page's CSRF token. No library, no build step.
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root) return;
  var S = JSON.parse(document.getElementById("desk-strings").textContent);
  var agent = root.dataset.agent, csrf = root.dataset.csrf;
  var view = null, tasks = [], fetchedAt = 0, live = false;
  var $ = function (id) { return document.getElementById(id); };

  function t(key) { return S[key] || key; }
  function set(el, text) { text = text === null || text === undefined ? "" : String(text); if (el.textContent !== text) el.textContent = text; }
  function fmtAge(s) {
    s = Math.max(0, Math.floor(s));
    var m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h >= 24) return Math.floor(h / 24) + " d " + (h % 24) + " h";
    if (h >= 1) return h + " h " + (m % 60) + " min";
    return m + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
  }
  function fmtTime(ts) {
    var d = new Date(ts * 1000), now = new Date();
    var hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return d.toDateString() === now.toDateString() ? hm : d.toLocaleDateString() + " " + hm;
  }
  var sayTimer = null;
  function say(text, bad) {
    var m = $("desk-msg");
    set(m, text);
    m.classList.toggle("bad", !!bad);
    clearTimeout(sayTimer);
    sayTimer = setTimeout(function () { set(m, ""); }, bad ? 15000 : 6000);
  }

  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = csrf;
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body || {});
    }
    return fetch(path, opts).then(function (r) {
      if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("logged out"); }
      return r.json().then(function (data) {
        if (!r.ok) throw new Error(data && data.error ? data.error : "HTTP " + r.status);
        return data;
      });
    });
  }
  function act(method, path, body, okText) {
    return api(method, path, body).then(function (data) {
      say(okText || t("done"));
      refreshDesk(); refreshTasks();
      return data;
    }).catch(function (e) { say(e.message, true); });
  }

  // ------------------------------------------------------------------ rendering
  function renderDesk() {
    if (!view) return;
    var a = view.agent;
    var st = $("agent-state");
    st.dataset.state = a.state;
    set(st, t(a.state) + (a.state === "paused" && a.pause_reason ? " (" + t(a.pause_reason) + ")" : ""));
    set($("agent-ext"), a.extension ? t("at") + " " + a.extension : "");
    root.dataset.state = a.state;
    var out = a.state === "logged_out";
    $("ctl-login").hidden = !out;
    $("ctl-pause").hidden = out || a.state === "paused";
    $("btn-resume").hidden = a.state !== "paused";
    $("btn-logout").hidden = out;
    if (a.extension && !$("login-ext").value) $("login-ext").value = a.extension;

    var c = view.call, box = $("call");
    box.dataset.phase = c ? c.phase : "";
    box.dataset.call = c ? c.id : "";
    $("call-none").hidden = !!c;
    $("call-body").hidden = !c;
    set($("call-phase"), c ? t(c.phase) : "");
    if (!c) return;
    set($("call-name"), c.name || (c.number ? "" : t("unknown")));
    set($("call-number"), c.number || "");
    set($("call-patient"), c.patient_id || "–");
    set($("call-kind"), c.caller_kind ? t(c.caller_kind) : c.direction === "outbound" ? t("outbound") : "–");
    set($("call-line"), c.service_line || c.did || "–");
    set($("call-queue"), c.queue || "–");
    set($("call-reason"), c.reason ? c.reason.label + " (" + c.reason.code + ")" : "–");
    var notes = $("call-notes");
    notes.textContent = "";
    c.notes.forEach(function (n) {
      var li = document.createElement("li");
      li.textContent = fmtTime(n.at) + " · " + (n.by || "") + ": " + n.text;
      notes.appendChild(li);
    });
    var tb = $("history");
    tb.textContent = "";
    $("history-table").hidden = !view.history.length;
    $("history-none").hidden = !!view.history.length;
    view.history.forEach(function (h) {
      var tr = document.createElement("tr");
      [fmtTime(h.offered_at), h.queue || h.service_line || "–", h.disposition.replace(/_/g, " "),
       h.reason ? h.reason.label : "–"].forEach(function (v) {
        var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
  }

  function renderTasks() {
    var ul = $("worklist"), tpl = $("task-tpl");
    var extra = Date.now() / 1000 - fetchedAt;
    var seen = {};
    set($("missed-count"), tasks.length || "");
    $("missed-none").hidden = tasks.length > 0;
    tasks.forEach(function (task, i) {
      seen[task.id] = true;
      var li = ul.querySelector('li[data-task="' + task.id + '"]');
      if (!li) {
        li = tpl.content.firstElementChild.cloneNode(true);
        li.dataset.task = task.id;
        li.querySelector(".t-claim").addEventListener("click", function () {
          act("POST", "/api/v1/missed/" + task.id + "/claim", {});
        });
        li.querySelector(".t-call").addEventListener("click", function () {
          var ext = view && view.agent.extension;
          act("POST", "/api/v1/missed/" + task.id + "/call", ext ? { extension: ext } : {}, t("calling"));
        });
        li.querySelector(".t-close").addEventListener("click", function () {
          act("POST", "/api/v1/missed/" + task.id + "/close", { outcome: li.querySelector(".t-outcome").value });
        });
      }
      if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
      set(li.querySelector(".t-number"), task.number);
      li.querySelector(".t-claim").setAttribute("aria-label", t("claim") + " " + task.number);
      li.querySelector(".t-call").setAttribute("aria-label", t("call_back") + " " + task.number);
      li.querySelector(".t-close").setAttribute("aria-label", t("record_outcome") + " " + task.number);
      set(li.querySelector(".t-age"), fmtAge(task.waiting + extra));
      li.querySelector(".t-age").setAttribute("title", t("waiting"));
      var info = [task.reasons.join(", "), task.queue || task.service_line || "",
                  t("missed") + " ×" + task.missed_count, t("attempts") + " " + task.attempts];
      if (task.claimed_by) info.push(t("claimed_by") + " " + task.claimed_by);
      set(li.querySelector(".t-info"), info.filter(Boolean).join(" · "));
      li.querySelector(".t-claim").hidden = !!task.claimed_by;
    });
    Array.prototype.forEach.call(ul.querySelectorAll("li.task"), function (li) {
      if (!seen[li.dataset.task]) li.remove();
    });
  }

  // ------------------------------------------------------------------ fetching
  function fetcher(load) {
    var inFlight = false, again = false, timer = null;
    function run() {
      if (inFlight) { again = true; return; }
      inFlight = true;
      load().catch(function (e) { if (e.message !== "logged out") say(e.message, true); })
        .then(function () { inFlight = false; if (again) { again = false; run(); } });
    }
    run.soon = function () { if (!timer) timer = setTimeout(function () { timer = null; run(); }, 150); };
    return run;
  }
  var refreshDesk = fetcher(function () {
    return api("GET", "/api/v1/agents/" + encodeURIComponent(agent) + "/call").then(function (d) {
      view = d; renderDesk();
    });
  });
  var refreshTasks = fetcher(function () {
    return api("GET", "/api/v1/missed").then(function (d) {
      tasks = d; fetchedAt = Date.now() / 1000; renderTasks();
    });
  });

  function connect() {
    var es = new EventSource("/api/v1/events");
    var status = $("desk-status");
    es.onopen = function () { live = true; set(status, t("live")); root.dataset.live = "1"; refreshDesk(); refreshTasks(); };
    function mine(ev) {
      try {
        var d = JSON.parse(ev.data);
        if (d.agent && d.agent !== agent) return false;
      } catch (e) { /* not JSON: refetch */ }
      return true;
    }
    ["agent.state_changed", "queue.connected", "queue.step", "callback.dialled"].forEach(function (name) {
      es.addEventListener(name, function (ev) { if (mine(ev)) refreshDesk.soon(); });
    });
    ["call.offered", "call.ringing", "call.answered", "call.ended"].forEach(function (name) {
      es.addEventListener(name, function () { refreshDesk.soon(); });
    });
    // a call's other steps (DTMF, prompts, recording, reason, note...): only those of the call shown
    ["call.step", "reason.set"].forEach(function (name) {
      es.addEventListener(name, function (ev) {
        try { if (!view || !view.call || JSON.parse(ev.data).call_id !== view.call.id) return; } catch (e) { /* refetch */ }
        refreshDesk.soon();
      });
    });
    ["missed.opened", "missed.merged", "missed.claimed", "missed.attempted", "missed.closed"].forEach(function (name) {
      es.addEventListener(name, function () { refreshTasks.soon(); });
    });
    es.addEventListener("gap", function () { refreshDesk.soon(); refreshTasks.soon(); });
    es.addEventListener("dropped", function () { es.close(); live = false; setTimeout(connect, 500); });
    es.onerror = function () { live = false; set(status, t("reconnecting")); root.dataset.live = "0"; };
  }

  // ------------------------------------------------------------------ actions
  var base = "/api/v1/agents/" + encodeURIComponent(agent);
  $("btn-login").addEventListener("click", function () {
    act("POST", base + "/login", { extension: $("login-ext").value.trim() });
  });
  $("login-ext").addEventListener("keydown", function (ev) { if (ev.key === "Enter") $("btn-login").click(); });
  $("btn-logout").addEventListener("click", function () { act("POST", base + "/logout", {}); });
  $("btn-pause").addEventListener("click", function () {
    act("POST", base + "/pause", { reason: $("pause-reason").value });
  });
  $("btn-resume").addEventListener("click", function () { act("POST", base + "/unpause", {}); });
  $("btn-reason").addEventListener("click", function () {
    var id = $("call").dataset.call;
    if (id) act("POST", "/api/v1/calls/" + encodeURIComponent(id) + "/reason", { code: $("reason-code").value }, t("reason_set"));
  });
  $("btn-note").addEventListener("click", function () {
    var id = $("call").dataset.call, text = $("note-text").value;
    if (!id) return;
    act("POST", "/api/v1/calls/" + encodeURIComponent(id) + "/note", { text: text }, t("note_added")).then(function (d) {
      if (d) $("note-text").value = "";
    });
  });
  $("dial-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    act("POST", base + "/call", { number: $("dial-number").value }, t("calling"));
  });

  refreshDesk();
  refreshTasks();
  connect();
  setInterval(renderTasks, 1000);  // the ages count up locally
  setInterval(function () { if (!live) { refreshDesk(); refreshTasks(); } }, 15000);
})();
