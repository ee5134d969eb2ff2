// idrs web: the session-expiry warning (no inline script anywhere; CSP script-src 'self').
// The server says how long a session may sit idle (data-idle-seconds on <body>). Each page
// load and each htmx request restarts the count; shortly before the end a warning appears,
// and at the end the page says the session is over.
(function () {
  "use strict";
  var body = document.body;
  var idle = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  var box = document.getElementById("expiry-warning");
  if (!idle || !box) { return; }
  var warnAt = Math.max(idle - Math.min(120, Math.floor(idle / 4)), 1);
  var timers = [];
  function show(text) { box.textContent = text; box.hidden = false; }
  function restart() {
    timers.forEach(clearTimeout);
    box.hidden = true;
    timers = [
      setTimeout(function () {
        show("Your session will end soon because of inactivity. Use any page or button to stay signed in.");
      }, warnAt * 1000),
      setTimeout(function () {
        show("Your session has ended because of inactivity. Sign in again to continue.");
      }, idle * 1000)
    ];
  }
  if (body.getAttribute("data-signed-in") === "1") {
    restart();
    document.addEventListener("htmx:afterRequest", restart);
  }
})();
