/* The product's one time format, for scripts: "YYYY-MM-DD HH:MM" (24-hour) and "HH:MM",
   in the server's time zone (<html data-time-zone>), as the templates' "Y-m-d H:i" show it.
   A browser's own toLocaleString would give "02:50 PM" in some locales and another zone. */
(function () {
  "use strict";
  var zone = document.documentElement.getAttribute("data-time-zone") || undefined;
  var format;
  function formatter() {
    if (format) return format;
    var options = {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
                   hourCycle: "h23"};
    try {
      format = new Intl.DateTimeFormat("en-CA", Object.assign({timeZone: zone}, options));
    } catch (e) {  // a zone name this browser does not know: its own zone, same format
      format = new Intl.DateTimeFormat("en-CA", options);
    }
    return format;
  }
  function parts(date) {
    var out = {};
    formatter().formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }
  window.cogloopTime = {
    dateTime: function (date) {
      var p = parts(date);
      return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
    },
    time: function (date) {
      var p = parts(date);
      return p.hour + ":" + p.minute;
    }
  };
})();
