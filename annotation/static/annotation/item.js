/* The correction form (the item page, and a lead's second review): step editing by keyboard
   and mouse, the lease heartbeat, release on leave, and the diff shown before submit. Text from
   the page goes into the DOM through textContent and form values only, never as HTML. Where
   there is no diff dialog, Ctrl+Enter clicks the button the form names in data-submit-button. */
(function () {
  "use strict";
  var form = document.getElementById("correction");
  if (!form) return;
  var body = document.querySelector("#steps tbody");
  var total = form.querySelector("input[name=steps-TOTAL_FORMS]");
  var status = document.getElementById("lease-status");
  var holds = status && status.dataset.holds === "1";
  var submitting = false;
  var cursor = 0;
  // The step labels in key order (1, 2, ...): inference.engine.parser.STRATEGIES, from the page.
  var STRATEGIES = JSON.parse(document.getElementById("strategies-data").textContent);

  function csrf() { return form.querySelector("input[name=csrfmiddlewaretoken]").value; }
  function rows() { return Array.prototype.slice.call(body.querySelectorAll("tr.step")); }
  function field(row, name) { return row.querySelector("[name$='-" + name + "']"); }
  function isDeleted(row) { var d = field(row, "DELETE"); return d && d.checked; }

  function renumber() {
    rows().forEach(function (row, i) { field(row, "ORDER").value = i + 1; });
  }
  function show() {
    var all = rows();
    if (!all.length) return;
    cursor = Math.max(0, Math.min(cursor, all.length - 1));
    all.forEach(function (row, i) { row.classList.toggle("cursor", i === cursor); });
    all[cursor].scrollIntoView({block: "nearest"});
  }
  function current() { return rows()[cursor]; }
  function insert(below, focusText) {
    var html = document.getElementById("step-template").innerHTML.replace(/__prefix__/g, total.value);
    var holder = document.createElement("tbody");
    holder.innerHTML = html;  // the template is server-rendered form markup, not user text
    var row = holder.firstElementChild;
    var at = current();
    if (!at) body.appendChild(row);
    else if (below) at.after(row);
    else at.before(row);
    total.value = String(Number(total.value) + 1);
    renumber();
    cursor = rows().indexOf(row);
    show();
    if (focusText !== false) field(row, "text").focus();
  }
  function move(delta) {
    var all = rows(), row = all[cursor], to = cursor + delta;
    if (!row || to < 0 || to >= all.length) return;
    if (delta < 0) all[to].before(row); else all[to].after(row);
    cursor = to;
    renumber();
    show();
  }
  function toggleDelete(row) {
    row = row || current();
    if (!row) return;
    var d = field(row, "DELETE");
    d.checked = !d.checked;
    row.classList.toggle("deleted", d.checked);
  }
  function setStrategy(n) {
    var row = current();
    if (row) field(row, "strategy").value = STRATEGIES[n];
  }
  function markWrong() {
    var row = current();
    if (!row) return;
    var position = rows().filter(function (r) { return !isDeleted(r); }).indexOf(row) + 1;
    form.querySelector("[name=first_wrong_step]").value = row.dataset.original || position || cursor + 1;
  }

  body.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-act]");
    if (!button) return;
    cursor = rows().indexOf(button.closest("tr"));
    var act = button.dataset.act;
    if (act === "up") move(-1);
    else if (act === "down") move(1);
    else if (act === "insert") insert(true);
    else if (act === "delete") toggleDelete();
    show();
  });
  body.addEventListener("focusin", function (ev) {
    var row = ev.target.closest("tr.step");
    if (row) { cursor = rows().indexOf(row); show(); }
  });
  document.getElementById("add-step").addEventListener("click", function () { cursor = rows().length - 1; insert(true); });

  // -- the lease ------------------------------------------------------------------------
  function say(text, bad) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }
  function lost(message) {
    holds = false;
    status.dataset.holds = "0";
    say(message + " Your work stays in this page: press c to claim the item again, then submit.", true);
  }
  function post(url, data) {
    var body = new FormData();
    Object.keys(data || {}).forEach(function (k) { body.append(k, data[k]); });
    return fetch(url, {method: "POST", body: body, credentials: "same-origin",
                       headers: {"X-CSRFToken": csrf(), "Accept": "application/json"}});
  }
  function renew() {
    if (!holds || submitting) return;
    post(form.dataset.leaseUrl).then(function (r) { return r.json(); }).then(function (data) {
      if (data.held) {
        var until = new Date(data.expires_at);
        say("You hold this item until " + until.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}) +
            "; the lease renews while this page is open and is released when you leave or skip.");
      } else {
        lost(data.message + ".");
      }
    }).catch(function () { /* offline for a moment: the next beat tries again */ });
  }
  function claim() {
    post(form.dataset.claimUrl).then(function (r) { return r.json(); }).then(function (data) {
      if (data.held) {
        holds = true;
        status.dataset.holds = "1";
        var claimForm = document.getElementById("claim-form");
        if (claimForm) claimForm.hidden = true;
        renew();
      } else {
        say(data.message + ".", true);
      }
    });
  }
  window.setInterval(renew, Number(form.dataset.renewMs || 60000));
  window.addEventListener("pagehide", function () {
    if (holds && !submitting && navigator.sendBeacon) {
      var data = new FormData();
      data.append("csrfmiddlewaretoken", csrf());
      data.append("reason", "leave");
      navigator.sendBeacon(form.dataset.releaseUrl, data);
    }
  });

  // -- the diff before submit -------------------------------------------------------------
  var originalData = document.getElementById("original-steps-data");
  var original = originalData ? JSON.parse(originalData.textContent) : [];
  var dialog = document.getElementById("diff-dialog");
  var confirmed = false;
  var submitter = null;  // the button that asked to submit ("Claim again and submit" sends reclaim)

  function corrected() {
    return rows().filter(function (r) { return !isDeleted(r) && field(r, "text").value.trim(); })
      .map(function (r) { return {text: field(r, "text").value.trim(), strategy: field(r, "strategy").value}; });
  }
  function diff(a, b) {
    // Longest common subsequence on step texts; a step kept with a new label is "changed".
    var n = a.length, m = b.length, i, j, L = [];
    for (i = 0; i <= n; i++) { L.push(new Array(m + 1).fill(0)); }
    for (i = n - 1; i >= 0; i--) for (j = m - 1; j >= 0; j--)
      L[i][j] = a[i].text.trim() === b[j].text ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    var out = [];
    i = 0; j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i].text.trim() === b[j].text) {
        out.push({op: (a[i].strategy || "") === b[j].strategy ? "same" : "changed", before: a[i], after: b[j]});
        i++; j++;
      } else if (j < m && (i === n || L[i][j + 1] > L[i + 1][j])) {
        out.push({op: "added", before: null, after: b[j]}); j++;
      } else {
        out.push({op: "removed", before: a[i], after: null}); i++;
      }
    }
    // Within a run of removals and additions, pair them in order as changed steps (as the
    // server's difflib diff does); what is left over stays removed or added.
    var merged = [], removed = [], added = [];
    function flush() {
      for (var k = 0; k < Math.max(removed.length, added.length); k++) {
        var before = removed[k] || null, after = added[k] || null;
        merged.push({op: before && after ? "changed" : (before ? "removed" : "added"), before: before, after: after});
      }
      removed = []; added = [];
    }
    out.forEach(function (row) {
      if (row.op === "removed") removed.push(row.before);
      else if (row.op === "added") added.push(row.after);
      else { flush(); merged.push(row); }
    });
    flush();
    out = merged;
    return out;
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function step(s) { return s ? s.text + "  [" + (s.strategy || "—") + "]" : ""; }
  function showDiff() {
    var tbody = document.querySelector("#diff-table tbody");
    tbody.textContent = "";
    diff(original, corrected()).forEach(function (row) {
      var tr = document.createElement("tr");
      tr.className = "diff-row-" + row.op;
      cell(tr, row.op);
      cell(tr, step(row.before), row.op === "removed" || row.op === "changed" ? "diff-removed" : "");
      cell(tr, step(row.after), row.op === "added" || row.op === "changed" ? "diff-added" : "");
      tbody.appendChild(tr);
    });
    var labels = document.getElementById("diff-labels");
    labels.textContent = "";
    var transparent = form.querySelector("[name=transparent]:checked");
    var errorType = form.querySelector("[name=error_type]");
    [["Answer", document.getElementById("original-answer").textContent.trim() + "  →  " +
                form.querySelector("[name=corrected_answer]").value.trim()],
     ["First wrong step", form.querySelector("[name=first_wrong_step]").value || "none marked"],
     ["Error type", errorType.options[errorType.selectedIndex].text],
     ["Correction strategy", form.querySelector("[name=correction_strategy]").value.trim() || "—"],
     ["Confidence interval", form.querySelector("[name=confidence_low]").value + " – " +
                             form.querySelector("[name=confidence_high]").value],
     ["Original understandable", transparent ? transparent.parentElement.textContent.trim() : "not answered"]
    ].forEach(function (pair) {
      var tr = document.createElement("tr");
      cell(tr, pair[0]); cell(tr, pair[1]);
      labels.appendChild(tr);
    });
    dialog.showModal();
    document.getElementById("confirm-next").focus();
  }
  function send(then) {
    document.getElementById("then").value = then;
    confirmed = true;
    submitting = true;
    dialog.close();
    form.requestSubmit(submitter || document.getElementById("submit"));
  }
  if (dialog) {
    form.addEventListener("submit", function (ev) {
      var by = ev.submitter;
      if (by && by.id !== "submit" && by.id !== "reclaim-submit") { submitting = true; return; }  // skip
      if (confirmed) { submitting = true; return; }
      ev.preventDefault();
      submitter = by || null;
      showDiff();
    });
    document.getElementById("confirm-next").addEventListener("click", function () { send("next"); });
    document.getElementById("confirm-queue").addEventListener("click", function () { send("queue"); });
    document.getElementById("diff-cancel").addEventListener("click", function () { dialog.close(); });
  }

  // -- keys (see the ? list) --------------------------------------------------------------
  function focus(selector) { var el = form.querySelector(selector); if (el) { el.focus(); if (el.select) el.select(); } }
  var keys = window.reviewKeys = window.reviewKeys || {};
  keys.j = function () { cursor++; show(); };
  keys.k = function () { cursor--; show(); };
  keys.J = function () { move(1); };
  keys.K = function () { move(-1); };
  keys.e = keys.Enter = function () { var row = current(); if (row) { var t = field(row, "text"); t.focus(); t.select(); } };
  keys.o = function () { insert(true); };
  keys.O = function () { insert(false); };
  keys.x = function () { toggleDelete(); };
  keys.w = markWrong;
  STRATEGIES.forEach(function (name, n) { keys[String(n + 1)] = function () { setStrategy(n); }; });
  keys.a = function () { focus("[name=corrected_answer]"); };
  keys.t = function () { focus("[name=error_type]"); };
  keys.r = function () { focus("[name=correction_strategy]"); };
  keys.i = function () { focus("[name=confidence_low]"); };
  keys.u = function () {
    var radios = form.querySelectorAll("[name=transparent]");
    var checked = form.querySelector("[name=transparent]:checked");
    (checked === radios[0] ? radios[1] : radios[0]).checked = true;
  };
  keys.c = function () { if (!holds) claim(); };
  keys.s = function () { var skip = document.getElementById("skip"); if (skip) skip.click(); };
  keys.Escape = function () { show(); };
  keys["ctrl+Enter"] = function () {
    if (dialog) { if (!dialog.open) { submitter = null; showDiff(); } }
    else if (form.dataset.submitButton) document.getElementById(form.dataset.submitButton).click();
  };
  // A page sent back with errors lists the steps in form order: put them in the reviewer's order.
  rows().map(function (row, i) { return [Number(field(row, "ORDER").value) || 1e9 + i, i, row]; })
    .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; })
    .forEach(function (entry) { body.appendChild(entry[2]); });
  renumber();
  show();
})();
