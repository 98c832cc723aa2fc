// Warden console: live updates over the page's event stream. Every page works without
// this script; it only keeps numbers and charts current. It never builds HTML from
// strings of its own: rows get text, and chart fragments come from the server, which
// escapes what they hold.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) { return; }
  var source = new EventSource(url);
  source.addEventListener("rows", function (e) {
    var rows = JSON.parse(e.data);
    var trs = document.querySelectorAll("tr[data-function]");
    for (var i = 0; i < trs.length; i++) {
      var tr = trs[i];
      var r = rows[tr.getAttribute("data-function")];
      if (!r) { continue; }
      var set = function (cls, text) {
        var cell = tr.querySelector("." + cls);
        if (cell) { cell.textContent = text; }
      };
      set("live-inv", String(r.invocations));
      set("live-err", String(r.errors));
      var failing = r.errors > 0 || tr.getAttribute("data-recent-errors") === "yes";
      tr.classList.toggle("failing", failing);
      set("state-live", failing ? "Failing" : "");
    }
  });
  source.addEventListener("charts", function (e) {
    var el = document.getElementById("charts");
    if (!el) { return; }
    var doc = new DOMParser().parseFromString(e.data, "text/html");
    var fresh = doc.getElementById("charts");
    if (fresh) { el.replaceWith(document.importNode(fresh, true)); }
  });
  source.addEventListener("end", function () { source.close(); });
})();
