/* Opt-in auto-refresh of a dashboard page: a checkbox, remembered in localStorage across
   pages and reloads; while it is ticked the page reloads every data-seconds seconds (the
   server's REFRESH_SECONDS). A page being edited (a date typed in the range) is not reloaded. */
(function () {
  "use strict";
  var KEY = "cogloop-dashboards-auto-refresh";
  var box = document.getElementById("auto-refresh");
  if (!box) return;
  var seconds = Number(box.dataset.seconds) || 60;
  var timer = null;
  function stored() {
    try { return window.localStorage.getItem(KEY) === "1"; } catch (e) { return false; }
  }
  function store(on) {
    try {
      if (on) window.localStorage.setItem(KEY, "1"); else window.localStorage.removeItem(KEY);
    } catch (e) { /* private mode: refresh for this page only */ }
  }
  function editing() {
    var el = document.activeElement;
    return !!(el && el.form);
  }
  function schedule() {
    window.clearTimeout(timer);
    timer = null;
    if (!box.checked) return;
    timer = window.setTimeout(function () {
      if (editing()) schedule(); else window.location.reload();
    }, seconds * 1000);
  }
  box.checked = stored();
  box.addEventListener("change", function () {
    store(box.checked);
    schedule();
  });
  schedule();
})();
