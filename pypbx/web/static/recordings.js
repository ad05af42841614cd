// Recordings, voicemail and quality review: the search form fetches /api/v1/recordings,
// a row's Play button loads its audio (served with range requests: the player seeks) and
// its review; a supervisor scores it (POST …/review with the CSRF header). Voicemail:
// GET /api/v1/voicemail, play, mark heard. No library, no build step.
(function () {
  "use strict";
  var root = document.getElementById("recordings");
  var S = JSON.parse(document.getElementById("rec-strings").textContent);
  var csrf = root.dataset.csrf;
  var form = document.getElementById("rec-search");
  var tbody = document.querySelector("#rec-table tbody");
  var status = document.getElementById("rec-status");
  var player = document.getElementById("player");
  var panel = document.getElementById("player-panel");
  var reviewForm = document.getElementById("review-form");
  var current = null;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function fmtTime(ts) {
    var d = new Date(ts * 1000);
    return d.toLocaleDateString() + " " + d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }
  function fmtDur(s) {
    if (s === null || s === undefined) return "–";
    s = Math.floor(s);  // as the player shows it
    return Math.floor(s / 60) + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
  }
  function fmtScore(q) {
    if (!q || !q.items) return "–";
    return q.yes + "/" + q.items;
  }
  function api(method, url, body) {
    var opts = {method: method, headers: {"Accept": "application/json"}, credentials: "same-origin"};
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    return fetch(url, opts).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) throw new Error((data && data.error) || r.status);
        return data;
      });
    });
  }

  function search(ev) {
    if (ev) ev.preventDefault();
    var params = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (v !== "") params.append(k, v); });
    status.textContent = S.loading;
    api("GET", "/api/v1/recordings?" + params.toString()).then(function (rows) {
      tbody.textContent = "";
      rows.forEach(function (r) { tbody.appendChild(row(r)); });
      status.textContent = rows.length === 1 ? S.found_one : rows.length ? rows.length + " " + S.found : S.none;
    }).catch(function (e) { status.textContent = S.error + ": " + e.message; });
  }

  function row(r) {
    var tr = el("tr");
    tr.dataset.call = r.call_id;
    [fmtTime(r.offered_at), r.caller + (r.caller_name ? " (" + r.caller_name + ")" : ""), r.callee,
     r.queue || "–", r.agent || r.extension || "–", r.service_line || "–", r.reason || "–",
     fmtDur(r.seconds)].forEach(function (t) { tr.appendChild(el("td", t)); });
    tr.appendChild(el("td", fmtScore(r.quality), "q-score"));
    var td = el("td", null, "actions");
    var play = el("button", S.play, "play");
    play.type = "button";
    play.setAttribute("aria-label", S.play + " " + fmtTime(r.offered_at));
    play.addEventListener("click", function () { open(r); });
    var dl = el("a", S.download, "download");
    dl.href = r.audio + "?download=1";
    td.appendChild(play);
    td.appendChild(dl);
    tr.appendChild(td);
    return tr;
  }

  function open(r) {
    current = r;
    panel.hidden = false;
    document.getElementById("player-call").textContent = fmtTime(r.offered_at);
    document.getElementById("player-meta").textContent =
      r.caller + " → " + r.callee + " · " + (r.agent || r.extension || "–") + " · " + fmtDur(r.seconds);
    document.getElementById("player-download").href = r.audio + "?download=1";
    Array.prototype.forEach.call(tbody.querySelectorAll("tr"), function (tr) {
      tr.classList.toggle("selected", tr.dataset.call === r.call_id);
    });
    player.src = r.audio;
    player.load();
    player.play().catch(function () { /* autoplay refused: the controls are there */ });
    if (reviewForm) { reviewForm.reset(); document.getElementById("review-saved").textContent = ""; }
    api("GET", "/api/v1/recordings/" + encodeURIComponent(r.call_id) + "/review").then(showReview);
  }

  function showReview(rv) {
    var view = document.getElementById("review-view");
    var answers = document.getElementById("review-answers");
    view.hidden = false;
    answers.textContent = "";
    if (!rv) {
      document.getElementById("review-score").textContent = S.not_reviewed;
      document.getElementById("review-comment").textContent = "";
      return;
    }
    document.getElementById("review-score").textContent =
      rv.yes + "/" + rv.items + " (" + Math.round((rv.score || 0) * 100) + " %) · " + S.reviewed_by + " " +
      rv.reviewer + " · " + fmtTime(rv.reviewed_at);
    rv.answers.forEach(function (a) {
      var li = el("li", (a.ok ? "✔ " : "✘ ") + a.item, a.ok ? "yes" : "no");
      li.setAttribute("aria-label", a.item + ": " + (a.ok ? S.yes : S.no));
      answers.appendChild(li);
    });
    document.getElementById("review-comment").textContent = rv.comment || "";
    if (reviewForm) {
      rv.answers.forEach(function (a) {
        var item = reviewForm.querySelector('.item[data-item="' + CSS.escape(a.item) + '"]');
        if (item) item.querySelector('input[value="' + (a.ok ? "yes" : "no") + '"]').checked = true;
      });
      document.getElementById("review-text").value = rv.comment || "";
    }
  }

  if (reviewForm) {
    reviewForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!current) return;
      var answers = {};
      Array.prototype.forEach.call(reviewForm.querySelectorAll(".item"), function (it) {
        var c = it.querySelector("input:checked");
        answers[it.dataset.item] = c ? c.value === "yes" : null;
      });
      var saved = document.getElementById("review-saved");
      api("POST", "/api/v1/recordings/" + encodeURIComponent(current.call_id) + "/review",
          {answers: answers, comment: document.getElementById("review-text").value})
        .then(function (rv) {
          saved.textContent = S.saved;
          showReview(rv);
          var tr = tbody.querySelector('tr[data-call="' + CSS.escape(current.call_id) + '"] .q-score');
          if (tr) tr.textContent = rv.yes + "/" + rv.items;
        })
        .catch(function (e) { saved.textContent = S.error + ": " + e.message; });
    });
  }

  // ---------------------------------------------------------------- voicemail
  var vm = document.getElementById("voicemail");
  function loadVoicemail() {
    api("GET", "/api/v1/voicemail").then(function (boxes) {
      vm.textContent = "";
      if (!boxes.length) { vm.appendChild(el("p", S.no_boxes, "meta")); return; }
      var tpl = document.getElementById("box-tpl");
      boxes.forEach(function (b) {
        var sec = tpl.content.firstElementChild.cloneNode(true);
        sec.dataset.box = b.box;
        sec.querySelector(".box-name").textContent = b.box + (b.new ? " · " + b.new + " " + S.new : "");
        var body = sec.querySelector("tbody");
        if (!b.messages.length) {
          var tr0 = el("tr"), td0 = el("td", S.no_messages);
          td0.colSpan = 5;
          tr0.appendChild(td0);
          body.appendChild(tr0);
        }
        b.messages.forEach(function (m) {
          var tr = el("tr");
          tr.dataset.msg = m.id;
          tr.className = m.heard ? "heard" : "new";
          tr.appendChild(el("td", fmtTime(m.received_at)));
          tr.appendChild(el("td", m.caller_display || m.caller || "–"));
          tr.appendChild(el("td", fmtDur(m.seconds)));
          tr.appendChild(el("td", m.heard ? S.heard : S.new, "vm-state"));
          var td = el("td", null, "actions");
          var play = el("button", S.play, "play");
          play.type = "button";
          play.addEventListener("click", function () {
            var a = tr.querySelector("audio") || el("audio");
            a.controls = true;
            a.src = m.audio;
            td.appendChild(a);
            a.play().catch(function () {});
          });
          var mark = el("button", m.heard ? S.mark_new : S.mark_heard, "mark");
          mark.type = "button";
          mark.addEventListener("click", function () {
            api("POST", "/api/v1/voicemail/" + encodeURIComponent(m.id) + "/heard", {heard: !m.heard})
              .then(loadVoicemail);
          });
          td.appendChild(play);
          td.appendChild(mark);
          tr.appendChild(td);
          body.appendChild(tr);
        });
        vm.appendChild(sec);
      });
    }).catch(function (e) { vm.textContent = S.error + ": " + e.message; });
  }

  form.addEventListener("submit", search);
  search();
  loadVoicemail();
})();
