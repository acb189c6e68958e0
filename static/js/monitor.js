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
    applySort();
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

  // Sorting the participants: a click on a column's header (or Enter on it) sorts by it, a second click
  // reverses. Names and roles sort alphabetically (A first), numbers numerically (largest first), exactly
  // on the decimal strings the cells carry (data-value); empty cells last either way. The choice is kept
  // for this session in this tab and applied again after every refresh, which replaces the table.
  var sortKey = null, sortDesc = false;

  function storageKey() { return "monitor-sort:" + (root && root.dataset.session); }

  function decimal(text) {
    var m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
    if (!m) return null;
    return { neg: m[1] === "-", whole: m[2].replace(/^0+/, ""), frac: (m[3] || "").replace(/0+$/, "") };
  }

  function compareMagnitude(a, b) {
    if (a.whole.length !== b.whole.length) return a.whole.length < b.whole.length ? -1 : 1;
    if (a.whole !== b.whole) return a.whole < b.whole ? -1 : 1;
    var n = Math.max(a.frac.length, b.frac.length), fa = a.frac.padEnd(n, "0"), fb = b.frac.padEnd(n, "0");
    return fa === fb ? 0 : fa < fb ? -1 : 1;
  }

  function compareDecimal(x, y) {
    var a = decimal(x), b = decimal(y);
    var zeroA = !a.whole && !a.frac, zeroB = !b.whole && !b.frac;
    var signA = zeroA ? 0 : a.neg ? -1 : 1, signB = zeroB ? 0 : b.neg ? -1 : 1;
    if (signA !== signB) return signA < signB ? -1 : 1;
    return signA * compareMagnitude(a, b);
  }

  function header(key) { return document.querySelector("[data-testid=monitor-table] th[data-sort='" + key + "']"); }

  function applySort() {
    var table = document.querySelector("[data-testid=monitor-table]");
    if (!table) return;
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      var on = th.dataset.sort === sortKey;
      th.classList.toggle("sorted", on);
      if (on) th.setAttribute("aria-sort", sortDesc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    var th = sortKey && header(sortKey);
    if (!th) return;
    var numeric = th.dataset.type === "num", body = table.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (row) { return row.dataset.user; });
    function value(row) {
      var cell = row.querySelector("td[data-col='" + sortKey + "']");
      var text = cell ? cell.dataset.value : "";
      return text === undefined || text === "" || (numeric && decimal(text) === null) ? null : text;
    }
    rows.sort(function (r1, r2) {
      var a = value(r1), b = value(r2);
      if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
      var order = numeric ? compareDecimal(a, b) : a.localeCompare(b, undefined, { sensitivity: "base", numeric: true });
      return sortDesc ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function chooseSort(th) {
    if (sortKey === th.dataset.sort) sortDesc = !sortDesc;
    else { sortKey = th.dataset.sort; sortDesc = th.dataset.type === "num"; }
    try { sessionStorage.setItem(storageKey(), JSON.stringify({ key: sortKey, desc: sortDesc })); } catch (e) { /* private mode */ }
    applySort();
  }

  document.addEventListener("click", function (evt) {
    var th = evt.target.closest && evt.target.closest("[data-testid=monitor-table] th[data-sort]");
    if (th) chooseSort(th);
  });
  document.addEventListener("keydown", function (evt) {
    var th = evt.target.closest && evt.target.closest("[data-testid=monitor-table] th[data-sort]");
    if (th && (evt.key === "Enter" || evt.key === " ")) { evt.preventDefault(); chooseSort(th); }
  });
  // The refresh swaps the whole live part: sort the new table before it is painted.
  document.addEventListener("htmx:afterSwap", applySort);
  document.addEventListener("htmx:oobAfterSwap", applySort);

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
    try {
      var kept = JSON.parse(sessionStorage.getItem(storageKey()) || "null");
      if (kept && kept.key) { sortKey = kept.key; sortDesc = !!kept.desc; }
    } catch (e) { /* nothing kept */ }
    applySort();
    connect();
    setInterval(schedule, EVERY_MS);
  });
})();
