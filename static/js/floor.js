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

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = Math.round((parseInt(el.dataset.expires, 10) - now) / 1000);
      var row = el.closest("tr");
      var accept = row && row.querySelector("button.primary");
      if (left <= 0) {
        el.textContent = "expired";
        el.className = "num countdown mono gone";
        if (accept) accept.disabled = true;
      } else {
        el.textContent = left >= 60 ? Math.floor(left / 60) + "m " + String(left % 60).padStart(2, "0") + "s" : left + "s";
        el.className = "num countdown mono" + (left <= 10 ? " soon" : "");
      }
    });
  }
  setInterval(tick, 500);
  document.addEventListener("DOMContentLoaded", tick);
})();
