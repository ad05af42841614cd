// Settings (admin): each form.settings-form is sent as JSON to its data-api URL (the
// /api/v1/settings routes) with the page's CSRF token. A refusal ({error, field}) is shown
// as one line next to its field (or at the form's foot); a generated password is shown
// once (data-once); data-refresh names a part of the page reloaded after a change.
// No library, no build step.
(function () {
  "use strict";
  var strings = JSON.parse(document.getElementById("settings-strings").textContent);
  var csrf = document.querySelector('meta[name="csrf"]').content;

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (p) {
      p.hidden = true; p.textContent = "";
    });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  function showError(form, field, message) {
    var p = form.querySelector('.field-error[data-field="' + CSS.escape(field || "") + '"]') ||
            form.querySelector('.field-error[data-field=""]');
    if (!p) return;
    p.textContent = message; p.hidden = false;
    p.setAttribute("role", "alert");
    var input = field ? form.querySelector('[name="' + CSS.escape(field) + '"]') : null;
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  }

  function body(form) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.type === "checkbox") out[el.name] = el.checked;
      else if (el.dataset.bool) out[el.name] = el.value === "true";
      else out[el.name] = el.value;
    });
    return out;
  }

  function showOnce(data) {
    var box = document.getElementById("shown-once");
    if (!box) return;
    box.textContent = "";
    var line = document.createElement("p");
    line.append(strings.extension + " " + data.number + " · " + strings.password + ": ");
    var code = document.createElement("code");
    code.id = "shown-password";
    code.textContent = data.password;
    line.append(code);
    var note = document.createElement("p");
    note.className = "hint";
    note.textContent = strings.once;
    box.append(line, note);
    box.hidden = false;
  }

  function refresh(id) {
    return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(id), old = document.getElementById(id);
        if (fresh && old) { old.replaceWith(document.adoptNode(fresh)); bind(document.getElementById(id)); }
      });
  }

  function submit(ev) {
    ev.preventDefault();
    var form = ev.currentTarget;
    clearErrors(form);
    var data = body(form);
    var url = form.dataset.api;
    if (!url) url = form.dataset.apiTemplate.replace("{name}", encodeURIComponent((data.name || "").trim()));
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(data)
    }).then(function (r) {
      return r.json().catch(function () { return { error: strings.failed }; }).then(function (d) {
        if (!r.ok) { showError(form, d.field || "", d.error || strings.failed); return; }
        if (form.dataset.once && d.password) showOnce(d);
        if (form.id === "ext-add" || form.id === "hours-new") form.reset();
        form.dataset.saved = "1";
        var done = form.dataset.refresh ? refresh(form.dataset.refresh) : Promise.resolve();
        return done.then(function () { document.body.dataset.saved = String(Date.now()); });
      });
    }).catch(function () { showError(form, "", strings.failed); })
      .then(function () { if (button) button.disabled = false; });
  }

  function bind(root) {
    Array.prototype.forEach.call(root.querySelectorAll("form.settings-form"), function (f) {
      f.addEventListener("submit", submit);
    });
    if (root.matches && root.matches("form.settings-form")) root.addEventListener("submit", submit);
  }
  bind(document);
})();
