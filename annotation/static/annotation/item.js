/* The correction form (the item page, and a lead's second review): step editing by keyboard
   and mouse, one-key labels, the draft kept in localStorage, the lease heartbeat, release on
   leave, and the check (diff, labels, problems) shown before submit. Text from the page goes
   into the DOM through textContent and form values only, never as HTML. Where there is no diff
   dialog, Ctrl+Enter clicks the button the form names in data-submit-button. */
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
  function named(name) { return form.querySelector("[name=" + name + "]"); }
  function all(selector) { return Array.prototype.slice.call(form.querySelectorAll(selector)); }
  function isDeleted(row) { var d = field(row, "DELETE"); return d && d.checked; }

  function renumber() {
    rows().forEach(function (row, i) {
      var n = i + 1;
      field(row, "ORDER").value = n;
      // Accessible names follow the row's place, for rows the server drew and rows added here.
      [["ORDER", "position"], ["text", "text"], ["strategy", "strategy"]].forEach(function (pair) {
        field(row, pair[0]).setAttribute("aria-label", "Step " + n + " " + pair[1]);
      });
      field(row, "DELETE").setAttribute("aria-label", "Delete step " + n);
      var words = {up: "Move step " + n + " up", down: "Move step " + n + " down",
                   insert: "Insert a step below step " + n, "delete": "Delete step " + n};
      row.querySelectorAll("button[data-act]").forEach(function (b) { b.setAttribute("aria-label", words[b.dataset.act]); });
      field(row, "strategy").classList.toggle("unchosen", !field(row, "strategy").value);
    });
    changed();
  }
  function show() {
    var list = rows();
    if (!list.length) return;
    cursor = Math.max(0, Math.min(cursor, list.length - 1));
    list.forEach(function (row, i) { row.classList.toggle("cursor", i === cursor); });
    list[cursor].scrollIntoView({block: "nearest"});
  }
  function current() { return rows()[cursor]; }
  function newRow() {
    var html = document.getElementById("step-template").innerHTML.replace(/__prefix__/g, total.value);
    var holder = document.createElement("tbody");
    holder.innerHTML = html;  // the template is server-rendered form markup, not user text
    total.value = String(Number(total.value) + 1);
    return holder.firstElementChild;
  }
  function insert(below, focusText) {
    var row = newRow();
    var at = current();
    if (!at) body.appendChild(row);
    else if (below) at.after(row);
    else at.before(row);
    renumber();
    cursor = rows().indexOf(row);
    show();
    if (focusText !== false) field(row, "text").focus();
  }
  function move(delta) {
    var list = rows(), row = list[cursor], to = cursor + delta;
    if (!row || to < 0 || to >= list.length) return;
    if (delta < 0) list[to].before(row); else list[to].after(row);
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
    changed();
  }
  function setStrategy(n) {
    var row = current();
    if (!row) return;
    field(row, "strategy").value = STRATEGIES[n];
    field(row, "strategy").classList.remove("unchosen");
    changed();
  }
  function markWrong() {
    var row = current();
    if (!row) return;
    var position = rows().filter(function (r) { return !isDeleted(r); }).indexOf(row) + 1;
    named("first_wrong_step").value = row.dataset.original || position || cursor + 1;
    changed();
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

  // -- the labels: one key each, none chosen for the reviewer ---------------------------------
  var unchanged = named("answer_unchanged");
  var originalAnswerEl = document.getElementById("original-answer");
  var originalAnswer = originalAnswerEl ? originalAnswerEl.textContent.trim() : "";
  function chooseErrorType(n) {
    var radio = all("[name=error_type]")[n];
    if (radio) { radio.checked = true; changed(); }
    return !!radio;
  }
  function chooseTransparent(yes) {
    var radio = form.querySelector("[name=transparent][value=" + (yes ? "yes" : "no") + "]");
    if (radio) { radio.checked = true; changed(); }
  }
  function choosePreset(key) {
    var button = form.querySelector(".preset[data-key='" + key + "']");
    if (!button) return false;
    named("confidence_low").value = button.dataset.low;
    named("confidence_high").value = button.dataset.high;
    changed();
    return true;
  }
  function syncUnchanged() {
    if (!unchanged) return;
    var answer = named("corrected_answer");
    answer.readOnly = unchanged.checked;
    if (unchanged.checked) answer.value = originalAnswer;
  }
  function toggleUnchanged() {
    if (!unchanged) return;
    unchanged.checked = !unchanged.checked;
    if (!unchanged.checked) named("corrected_answer").value = "";
    syncUnchanged();
    changed();
  }
  if (unchanged) unchanged.addEventListener("change", function () {
    if (!unchanged.checked) named("corrected_answer").value = "";
    syncUnchanged();
  });
  all(".preset").forEach(function (b) { b.addEventListener("click", function () { choosePreset(b.dataset.key); }); });

  // -- the draft: kept per item and user in localStorage, restored on load -------------------
  var draftKey = form.dataset.draftKey;
  var draftStatus = document.getElementById("draft-status");
  var restoring = false, saveTimer = null;
  function storage() { try { return window.localStorage; } catch (e) { return null; } }
  function snapshot() {
    var values = {};
    all("#labels input, #labels textarea").forEach(function (el) {
      if (el.type === "radio") { if (el.checked) values[el.name] = el.value; }
      else if (el.type === "checkbox") values[el.name] = el.checked;
      else values[el.name] = el.value;
    });
    return {
      saved: new Date().toISOString(),
      rows: rows().map(function (r) {
        return {text: field(r, "text").value, strategy: field(r, "strategy").value,
                deleted: isDeleted(r), original: r.dataset.original || ""};
      }),
      values: values
    };
  }
  function saveDraft() {
    saveTimer = null;
    var store = storage();
    if (store && draftKey && !submitting) {
      try { store.setItem(draftKey, JSON.stringify(snapshot())); } catch (e) { /* storage full: the page still works */ }
    }
  }
  function changed() {
    if (restoring || !draftKey || saveTimer) return;
    saveTimer = window.setTimeout(saveDraft, 150);
  }
  function restore(draft) {
    restoring = true;
    body.textContent = "";
    total.value = "0";
    form.querySelector("input[name=steps-INITIAL_FORMS]").value = "0";
    draft.rows.forEach(function (saved) {
      var row = newRow();
      body.appendChild(row);
      field(row, "text").value = saved.text;
      field(row, "strategy").value = saved.strategy;
      field(row, "DELETE").checked = !!saved.deleted;
      row.classList.toggle("deleted", !!saved.deleted);
      if (saved.original) row.dataset.original = saved.original;
    });
    Object.keys(draft.values || {}).forEach(function (name) {
      var value = draft.values[name];
      all("#labels [name='" + name + "']").forEach(function (el) {
        if (el.type === "radio") el.checked = el.value === value;
        else if (el.type === "checkbox") el.checked = !!value;
        else el.value = value;
      });
    });
    syncUnchanged();
    restoring = false;
    if (draftStatus) {
      draftStatus.querySelector("span").textContent = "Your unsaved work on this item from " +
        window.cogloopTime.dateTime(new Date(draft.saved)) + " is restored.";
      draftStatus.hidden = false;
    }
  }
  if (draftKey) {
    var store = storage();
    var done = status && status.dataset.done === "1";
    var saved = null;
    try { saved = store && JSON.parse(store.getItem(draftKey) || "null"); } catch (e) { saved = null; }
    if (done && store) store.removeItem(draftKey);
    // A page sent back with errors holds exactly what was sent: the draft is not newer.
    else if (saved && saved.rows && form.dataset.bound !== "1") restore(saved);
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    document.getElementById("draft-discard").addEventListener("click", function () {
      if (store) store.removeItem(draftKey);
      submitting = true;  // nothing to keep: the reload shows the item as the server has it
      window.location.reload();
    });
  }

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
    var fd = new FormData();
    Object.keys(data || {}).forEach(function (k) { fd.append(k, data[k]); });
    return fetch(url, {method: "POST", body: fd, credentials: "same-origin",
                       headers: {"X-CSRFToken": csrf(), "Accept": "application/json"}});
  }
  function renew() {
    if (!holds || submitting) return;
    post(form.dataset.leaseUrl).then(function (r) { return r.json(); }).then(function (data) {
      if (data.held) {
        var until = new Date(data.expires_at);
        say("You hold this item until " + window.cogloopTime.time(until) +
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
  if (form.dataset.leaseUrl) window.setInterval(renew, Number(form.dataset.renewMs || 60000));
  window.addEventListener("pagehide", function () {
    if (saveTimer) { window.clearTimeout(saveTimer); saveDraft(); }
    if (holds && !submitting && navigator.sendBeacon) {
      var data = new FormData();
      data.append("csrfmiddlewaretoken", csrf());
      data.append("reason", "leave");
      // The server releases only for the latest page it served of this item: not on a reload.
      data.append("page", form.dataset.page || "");
      navigator.sendBeacon(form.dataset.releaseUrl, data);
    }
  });

  // -- the check before submit: diff, labels and every problem the server would refuse -------
  var originalData = document.getElementById("original-steps-data");
  var original = originalData ? JSON.parse(originalData.textContent) : [];
  var dialog = document.getElementById("diff-dialog");
  var confirmed = false;
  var submitter = null;  // the button that asked to submit ("Claim again and submit" sends reclaim)

  function kept() { return rows().filter(function (r) { return !isDeleted(r) && field(r, "text").value.trim(); }); }
  function corrected() {
    return kept().map(function (r) { return {text: field(r, "text").value.trim(), strategy: field(r, "strategy").value}; });
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
    return merged;
  }
  function number(name) {
    var raw = named(name).value.trim();
    return {raw: raw, value: raw === "" ? null : Number(raw)};
  }
  function problems() {
    // The same rules the form and the service apply, in the words the page uses.
    var out = [];
    var steps = kept();
    if (!steps.length) out.push("Corrected steps: at least one step with text is needed.");
    steps.forEach(function (r) {
      if (!field(r, "strategy").value) out.push("Step " + field(r, "ORDER").value + ": choose its strategy (1–" + STRATEGIES.length + ").");
    });
    if (!named("corrected_answer").value.trim())
      out.push("Corrected answer: type it" + (unchanged ? ", or press A if the original answer is right as it is." : "."));
    if (!form.querySelector("[name=error_type]:checked")) out.push("Error type: not chosen.");
    var low = number("confidence_low"), high = number("confidence_high");
    [["low end", low], ["high end", high]].forEach(function (pair) {
      var v = pair[1];
      if (v.value === null) out.push("Confidence interval: the " + pair[0] + " is not given.");
      else if (isNaN(v.value) || v.value < 0 || v.value > 1) out.push("Confidence interval: the " + pair[0] + " " + v.raw + " is not in [0, 1].");
    });
    if (low.value !== null && high.value !== null && low.value > high.value)
      out.push("Confidence interval: " + low.raw + " – " + high.raw + " has the low end above the high end.");
    if (!form.querySelector("[name=transparent]:checked")) out.push("Original reasoning understandable?: not answered.");
    var wrong = named("first_wrong_step").value.trim(), last = Number(form.dataset.originalCount || original.length) + 1;
    if (wrong && !(/^\d+$/.test(wrong) && Number(wrong) >= 1 && Number(wrong) <= last))
      out.push("First wrong step: " + wrong + " is not a step of the original (1 to " + last + ").");
    return out;
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function step(s) { return s ? s.text + "  [" + (s.strategy || "no strategy") + "]" : ""; }
  function checkedLabel(name, missing) {
    var radio = form.querySelector("[name=" + name + "]:checked");
    return radio ? radio.parentElement.querySelector(".choice").textContent.trim() : missing;
  }
  function renderCheck() {
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
    var answer = named("corrected_answer").value.trim();
    var low = named("confidence_low").value.trim(), high = named("confidence_high").value.trim();
    [["Answer", unchanged && unchanged.checked ? originalAnswer + "  (unchanged)" :
                (answer ? originalAnswer + "  →  " + answer : "not given")],
     ["First wrong step", named("first_wrong_step").value || "none marked"],
     ["Error type", checkedLabel("error_type", "not chosen: press 1–" + all("[name=error_type]").length)],
     ["Correction strategy", named("correction_strategy").value.trim() || "—"],
     ["Confidence interval", low || high ? (low || "?") + " – " + (high || "?") : "not given: press h, m or l, or type it"],
     ["Original understandable", checkedLabel("transparent", "not answered: press y or n")]
    ].forEach(function (pair) {
      var tr = document.createElement("tr");
      cell(tr, pair[0]); cell(tr, pair[1]);
      labels.appendChild(tr);
    });
    var box = document.getElementById("diff-problems");
    var list = box.querySelector("ul");
    list.textContent = "";
    var found = problems();
    found.forEach(function (text) { var li = document.createElement("li"); li.textContent = text; list.appendChild(li); });
    box.hidden = !found.length;
    return found;
  }
  function showDiff() {
    renderCheck();
    dialog.showModal();
    document.getElementById("confirm-next").focus();
  }
  function send(then) {
    if (renderCheck().length) {
      document.getElementById("diff-problems").focus();
      return;
    }
    document.getElementById("then").value = then;
    if (draftKey) {
      saveDraft();
      // The next page clears the draft unless it is this item sent back with errors (shortcuts.js).
      try { window.sessionStorage.setItem("cogloop-submitted", draftKey); } catch (e) { /* no session storage */ }
    }
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
    // In the check each open label takes one key; the page's own keys wait until it closes.
    dialog.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
      var handled = false;
      if (/^[1-9]$/.test(ev.key)) handled = chooseErrorType(Number(ev.key) - 1);
      else if (ev.key === "y" || ev.key === "n") { chooseTransparent(ev.key === "y"); handled = true; }
      else if (ev.key === "A" && unchanged) { if (!unchanged.checked) toggleUnchanged(); handled = true; }
      else handled = choosePreset(ev.key);
      if (handled) { ev.preventDefault(); renderCheck(); }
    });
  }

  // -- keys (see the ? list) --------------------------------------------------------------
  function focus(selector) { var el = form.querySelector(selector); if (el) { el.focus(); if (el.select) el.select(); } }
  function inErrorType() { var el = document.activeElement; return el && el.name === "error_type"; }
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
  // Digits label the highlighted step, or, while the error type has the focus (t), pick one.
  [1, 2, 3, 4, 5, 6, 7, 8, 9].forEach(function (n) {
    keys[String(n)] = function () {
      if (inErrorType()) { if (chooseErrorType(n - 1)) focus("[name=error_type]:checked"); }
      else if (n <= STRATEGIES.length) setStrategy(n - 1);
    };
  });
  keys.a = function () { if (unchanged && unchanged.checked) toggleUnchanged(); focus("[name=corrected_answer]"); };
  keys.A = toggleUnchanged;
  keys.t = function () { focus("[name=error_type]:checked"); if (!inErrorType()) focus("[name=error_type]"); };
  keys.r = function () { focus("[name=correction_strategy]"); };
  keys.i = function () { focus("[name=confidence_low]"); };
  keys.h = function () { choosePreset("h"); };
  keys.m = function () { choosePreset("m"); };
  keys.l = function () { choosePreset("l"); };
  keys.u = function () {
    var checked = form.querySelector("[name=transparent]:checked");
    chooseTransparent(!checked || checked.value === "no");
  };
  keys.c = function () { if (!holds) claim(); };
  keys.s = function () { var skip = document.getElementById("skip"); if (skip) skip.click(); };
  keys.Escape = function () { if (document.activeElement && document.activeElement.type === "radio") document.activeElement.blur(); show(); };
  keys["ctrl+Enter"] = function () {
    if (dialog) { if (!dialog.open) { submitter = null; showDiff(); } }
    else if (form.dataset.submitButton) document.getElementById(form.dataset.submitButton).click();
  };
  // A page sent back with errors lists the steps in form order: put them in the reviewer's order.
  rows().map(function (row, i) { return [Number(field(row, "ORDER").value) || 1e9 + i, i, row]; })
    .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; })
    .forEach(function (entry) { body.appendChild(entry[2]); });
  restoring = true;
  renumber();
  syncUnchanged();
  restoring = false;
  show();
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
