// The floor's only script: connection status and quote countdowns. Everything else is htmx.
(function () {
  function setLive(state, text) {
    var el = document.getElementById("live");
    if (!el) return;
    el.classList.remove("on", "off");
    if (state) el.classList.add(state);
    el.querySelector(".live-text").textContent = text;
  }
  document.addEventListener("htmx:wsOpen", function () { setLive("on", "live"); });
  document.addEventListener("htmx:wsClose", function () { setLive("off", "reconnecting…"); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    setLive("on", "live");
    var el = document.getElementById("live");
    if (el) { el.classList.add("flash"); setTimeout(function () { el.classList.remove("flash"); }, 250); }
    tick();
  });
  document.addEventListener("htmx:afterSwap", tick);

  function left(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s >= 3600) return Math.floor(s / 3600) + "h " + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
    return s >= 60 ? Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s" : s + "s";
  }

  // Trading in a timed session stops at t2 by itself (the server refuses every action from then on):
  // the page says so at that instant, before the scheduler's TradingClosed arrives over the socket.
  function closeAtT2(now) {
    var floor = document.querySelector(".floor[data-t2]");
    if (!floor) return;
    var t2 = parseInt(floor.dataset.t2, 10);
    document.querySelectorAll("[data-closes]").forEach(function (el) {
      el.textContent = now < t2 ? "in " + left(t2 - now) : "now";
    });
    if (now < t2) return;
    var badge = document.querySelector("[data-testid=session-status]");
    if (badge && badge.classList.contains("open")) {
      badge.textContent = "Trading closed";
      badge.className = "badge closed";
    }
    document.querySelectorAll("#board button, #board input, #board select").forEach(function (el) {
      el.disabled = true;
    });
    var note = document.querySelector("[data-testid=closes]");
    if (note) note.textContent = "Trading closed at t2: the session settles at the fixing.";
  }

  function tick() {
    var now = Date.now();
    closeAtT2(now);
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var secondsLeft = Math.round((parseInt(el.dataset.expires, 10) - now) / 1000);
      var row = el.closest("tr");
      var accept = row && row.querySelector("button.primary");
      if (secondsLeft <= 0) {
        el.textContent = "expired";
        el.className = "num countdown mono gone";
        if (accept) accept.disabled = true;
      } else {
        el.textContent = secondsLeft >= 60 ? Math.floor(secondsLeft / 60) + "m " + String(secondsLeft % 60).padStart(2, "0") + "s" : secondsLeft + "s";
        el.className = "num countdown mono" + (secondsLeft <= 10 ? " soon" : "");
      }
    });
  }
  setInterval(tick, 500);
  document.addEventListener("DOMContentLoaded", tick);
})();
