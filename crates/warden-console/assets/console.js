// Warden console: live updates over the page's event stream. Every page works without
// this script; it only keeps numbers and charts current. It never builds HTML from
// strings of its own: rows get text, and chart fragments come from the server, which
// escapes what they hold.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  // The log tail: new lines are appended as text, the oldest dropped past 1,000.
  var logs = document.getElementById("logs");
  var logsUrl = logs && logs.getAttribute("data-live-logs");
  if (logsUrl) {
    var tail = new EventSource(logsUrl);
    tail.addEventListener("logs", function (e) {
      var lines = JSON.parse(e.data);
      for (var i = 0; i < lines.length; i++) {
        logs.appendChild(document.createTextNode(lines[i] + "\n"));
      }
      while (logs.childNodes.length > 1000) { logs.removeChild(logs.firstChild); }
    });
    tail.addEventListener("end", function () { tail.close(); });
  }
  var url = document.body.getAttribute("data-live");
  if (!url) { return; }
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
