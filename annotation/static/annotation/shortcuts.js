/* The keys of every review page: ? opens the list (#shortcuts), n claims the next item, q goes
   to the queue, whose URL the list carries in data-queue-url (Django's URLconf decides it). */
(function () {
  "use strict";
  // Page scripts add handlers to window.reviewKeys; keys typed into a field are left alone.
  window.reviewKeys = window.reviewKeys || {};
  var typing = function (el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  };
  document.addEventListener("keydown", function (ev) {
    var help = document.getElementById("shortcuts");
    if (document.querySelector("dialog[open]") || ev.altKey || ev.metaKey) return;
    if (ev.ctrlKey && !(ev.key === "Enter" && window.reviewKeys["ctrl+Enter"])) return;
    if (ev.ctrlKey) { ev.preventDefault(); window.reviewKeys["ctrl+Enter"](ev); return; }
    if (ev.key === "Escape" && typing(document.activeElement)) {
      document.activeElement.blur();
      if (window.reviewKeys.Escape) window.reviewKeys.Escape(ev);
      return;
    }
    if (typing(document.activeElement)) return;
    var handler = window.reviewKeys[ev.key];
    if (ev.key === "?") { ev.preventDefault(); help.showModal(); return; }
    if (ev.key === "q") { window.location.href = help.dataset.queueUrl; return; }
    if (ev.key === "n" && !handler) { ev.preventDefault(); document.getElementById("claim-next-form").submit(); return; }
    if (handler) { ev.preventDefault(); handler(ev); }
  });
})();
