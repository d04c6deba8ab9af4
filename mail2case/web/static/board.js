// The queue board's own script: live countdowns to each deadline. No build step.
// Every element with data-due (ISO 8601, UTC) shows the time left, updated each second;
// its row turns "breached" when the deadline passes (the server sets the other colours).
(function () {
  "use strict";
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function format(ms) {
    var sign = ms < 0 ? "-" : "";
    var left = Math.floor(Math.abs(ms) / 1000);
    var days = Math.floor(left / 86400), hours = Math.floor(left % 86400 / 3600);
    var minutes = Math.floor(left % 3600 / 60), seconds = left % 60;
    if (days) { return sign + days + "d " + hours + "h"; }
    if (hours) { return sign + hours + "h " + pad(minutes) + "m"; }
    return sign + minutes + "m " + pad(seconds) + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      el.textContent = format(due - now);
      var row = el.closest("[data-risk]");
      if (row && due <= now) { row.setAttribute("data-risk", "breached"); }
    });
  }
  tick();
  setInterval(tick, 1000);
  // A refreshed table arrives with the server's countdowns, computed on its clock; show
  // the browser's at once, so a swap between two ticks never sets the countdown back.
  document.addEventListener("htmx:afterSwap", tick);
})();
