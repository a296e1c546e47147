/* The queue by keyboard: j/k move the highlighted row, Enter opens its item, c claims it,
   / goes to the filters (shortcuts.js dispatches the keys). */
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-item]"));
  var cursor = -1;
  function show() {
    cursor = Math.max(0, Math.min(cursor, rows.length - 1));
    rows.forEach(function (row, i) { row.classList.toggle("cursor", i === cursor); });
    if (rows[cursor]) rows[cursor].scrollIntoView({block: "nearest"});
  }
  var keys = window.reviewKeys = window.reviewKeys || {};
  keys.j = function () { cursor++; show(); };
  keys.k = function () { cursor--; show(); };
  keys.Enter = function () { if (rows[cursor]) rows[cursor].querySelector("a").click(); };
  keys.c = function () { var b = rows[cursor] && rows[cursor].querySelector("form button"); if (b) b.click(); };
  keys["/"] = function () { document.querySelector("#filters select, #filters input").focus(); };
})();
