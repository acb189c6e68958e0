// The organiser's monitor: re-read the live part (an htmx GET of its partial) when the floor's socket says
// something changed (an event, a tick, a socket that came or went), at most ~3 times a second, and every
// 10 s for the "last seen" times and for sockets served by other processes. Everything else is htmx.
(function () {
  var MIN_GAP_MS = 350;
  var EVERY_MS = 10000;
  var root, timer = null, inflight = false, again = false, last = 0, socket = null, retry = 1000;

  function setLive(state, text) {
    var el = document.getElementById("monitor-socket");
    if (!el) return;
    el.classList.remove("on", "off");
    if (state) el.classList.add(state);
    el.querySelector(".live-text").textContent = text;
  }

  // The controls are left alone while the organiser is using them (typing a reason, confirming a settlement).
  function controlsBusy() {
    var controls = document.getElementById("monitor-controls");
    if (!controls) return false;
    if (controls.contains(document.activeElement) || controls.querySelector("[data-preview]")) return true;
    return Array.prototype.some.call(controls.querySelectorAll("input[name=reason]"), function (i) { return i.value; });
  }

  function refresh() {
    timer = null;
    if (inflight) { again = true; return; }
    inflight = true;
    last = Date.now();
    var url = root.dataset.liveUrl + (controlsBusy() ? "?controls=0" : "");
    htmx.ajax("GET", url, { target: "#monitor-live", swap: "outerHTML" }).then(done, done);
  }

  function done() {
    inflight = false;
    root.dataset.refreshes = String(parseInt(root.dataset.refreshes || "0", 10) + 1);
    if (again) { again = false; schedule(); }
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(0, last + MIN_GAP_MS - Date.now()));
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.socket);
    socket.onopen = function () { retry = 1000; setLive("on", "live"); schedule(); };
    socket.onmessage = function () {
      var el = document.getElementById("monitor-socket");
      if (el) { el.classList.add("flash"); setTimeout(function () { el.classList.remove("flash"); }, 250); }
      schedule();
    };
    socket.onclose = function () {
      setLive("off", "reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  // A refresh asked for before the organiser started typing must not wipe what they typed either.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    if (inflight && evt.detail.target && evt.detail.target.id === "monitor-controls" && controlsBusy()) {
      evt.detail.shouldSwap = false;
    }
  });

  // A participant's rejoin link (the row's "Rejoin link") loads into the dialog, which then opens.
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (!evt.detail.target || evt.detail.target.id !== "rejoin-dialog-body") return;
    var dialog = document.getElementById("rejoin-dialog");
    if (dialog && !dialog.open) dialog.showModal();
  });

  document.addEventListener("DOMContentLoaded", function () {
    root = document.querySelector(".monitor[data-live-url]");
    if (!root || !window.htmx) return;
    connect();
    setInterval(schedule, EVERY_MS);
  });
})();
