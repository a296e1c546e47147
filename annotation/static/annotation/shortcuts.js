/* The keys of every review page: ? opens the list (#shortcuts), n claims the next item, q goes
   to the queue, whose URL the list carries in data-queue-url (Django's URLconf decides it). */
(function () {
  "use strict";
  // A correction was sent from an item page (item.js): its draft goes, unless this page is
  // that item sent back with errors (then the work is still unsaved).
  try {
    var sent = window.sessionStorage.getItem("cogloop-submitted");
    if (sent) {
      window.sessionStorage.removeItem("cogloop-submitted");
      var form = document.getElementById("correction");
      var refused = form && form.dataset.draftKey === sent && form.dataset.bound === "1";
      if (!refused) window.localStorage.removeItem(sent);
    }
  } catch (e) { /* storage refused: drafts are a convenience */ }

  // Page scripts add handlers to window.reviewKeys; keys typed into a field are left alone
  // (a radio button or a checkbox takes no text, so keys still work there).
  window.reviewKeys = window.reviewKeys || {};
  var typing = function (el) {
    if (el && el.tagName === "INPUT" && (el.type === "radio" || el.type === "checkbox")) return false;
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
