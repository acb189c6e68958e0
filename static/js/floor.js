// The floor's only script: connection status, quote countdowns, fair-rate hints and failures shown where
// the person acted. Everything else is htmx.
(function () {
  function setLive(state, text) {
    var el = document.getElementById("live");
    if (!el) return;
    el.classList.remove("on", "off");
    if (state) el.classList.add(state);
    el.querySelector(".live-text").textContent = text;
  }
  // A push is swapped by htmx.swap, not by the WebSocket extension's own loop: that loop swaps only a
  // message's top-level elements, and table rows (a trade's blotter row, the holdings rows it moved)
  // cannot stand at the top of a fragment beside other elements; the server wraps them in <template>,
  // which htmx.swap looks into for out-of-band elements. Then the row tables keep their newest rows.
  document.addEventListener("htmx:wsBeforeMessage", function (evt) {
    var message = evt.detail.message;
    if (typeof message !== "string" || !/^\s*</.test(message)) return;
    evt.preventDefault();
    htmx.swap(evt.target, message, { swapStyle: "none" });
    keepRows();
    htmx.trigger(evt.target, "htmx:wsAfterMessage", { message: message });
  });
  // Rows arrive on top of their table: one row per id (a push may repeat a row the floor read already
  // shows), no "nothing yet" row beside real ones, and only the newest data-keep of them.
  function keepRows() {
    document.querySelectorAll("tbody[data-keep], #rfqs").forEach(function (body) {
      var keep = parseInt(body.dataset.keep || "0", 10), seen = {}, kept = 0;
      var rows = Array.prototype.slice.call(body.children);
      var any = rows.some(function (row) { return !row.classList.contains("empty"); });
      rows.forEach(function (row) {
        if ((row.classList.contains("empty") && any) || (row.id && seen[row.id]) || (keep && kept >= keep)) {
          row.remove();
          return;
        }
        seen[row.id] = true;
        kept += 1;
      });
    });
  }
  document.addEventListener("htmx:wsOpen", function () { setLive("on", "live"); });
  // The WebSocket extension reconnects only after an abnormal close or a restart (1006, 1011-1013); a
  // socket the server closed for good (signed out, access withdrawn, the session gone) says so instead of
  // claiming "reconnecting…".
  var AGAIN = [1006, 1011, 1012, 1013];
  var FINAL = { 4401: "signed out: reload the page", 4403: "not visible to you any more", 4404: "this session is gone" };
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail && evt.detail.event && evt.detail.event.code;
    setLive("off", AGAIN.indexOf(code) >= 0 || code === undefined ? "reconnecting…" : FINAL[code] || "disconnected: reload the page");
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    setLive("on", "live");
    var el = document.getElementById("live");
    if (el) { el.classList.add("flash"); setTimeout(function () { el.classList.remove("flash"); }, 250); }
    tick();
  });
  document.addEventListener("htmx:afterSwap", tick);
  // A browser that lost its network says so at once (the socket may take a minute to notice).
  window.addEventListener("offline", function () { setLive("off", "offline"); });
  window.addEventListener("online", function () { setLive("off", "reconnecting…"); });
  document.addEventListener("DOMContentLoaded", function () { if (!navigator.onLine) setLive("off", "offline"); });

  // Every refusal and failure is shown where the person acted. Refusals the server explains come back
  // as the panel with the message in it; what htmx does not swap (an error status, no answer) is said here.
  function failure(elt, text) {
    var anchor = (elt && (elt.closest("form") || elt.closest("td") || elt)) || document.querySelector("main");
    var box = document.createElement("p");
    box.className = "error failure";
    box.setAttribute("role", "alert");
    box.dataset.testid = "failure";
    box.dataset.kept = "";
    if (anchor.id) box.dataset.after = anchor.id;
    anchor.insertAdjacentElement("afterend", box);
    box.textContent = text;
    adopt();
  }
  function explained(xhr) {
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var said = doc.querySelector("[role=alert], main p");
      text = said ? said.textContent.trim() : "";
    } catch (e) { text = ""; }
    if (xhr.status === 403 && /CSRF/i.test(xhr.responseText || "")) return "Your sign-in expired: reload the page and try again.";
    return (text || "The server refused this (" + xhr.status + ").") + " Nothing was changed.";
  }
  document.addEventListener("htmx:responseError", function (evt) {
    failure(evt.detail.elt, explained(evt.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function (evt) {
    failure(evt.detail.elt, "The server did not answer: nothing was done. Check the connection and try again.");
    setLive("off", navigator.onLine ? "server unreachable" : "offline");
  });

  // What was said where the person acted (a refusal, a failure, "Traded: gave 10 AAPL, got ...") stays
  // there until they act again or dismiss it: pushes redraw the board several times a second and would
  // take it away at once. A kept element says where it stands: data-after (the id it follows), data-in
  // (the panel or RFQ it stands in: after the panel's heading, else at its end), data-replaces (the RFQ
  // it stands in place of: where that RFQ was when the person acted). Its place gone, it moves up to
  // the board's top, saying what it was about (data-context).
  var kept = [], acted = null;
  function adopt() {
    document.querySelectorAll("[data-kept]").forEach(function (el) {
      if (kept.indexOf(el) >= 0) return;
      if (!el.dataset.in) {
        var home = el.parentNode && el.parentNode.closest("[id]");
        if (home) el.dataset.in = home.id;
      }
      if (el.dataset.replaces && acted && acted.id === el.dataset.replaces) el.dataset.prev = acted.prev;
      var close = document.createElement("button");
      close.type = "button";
      close.className = "dismiss";
      close.title = "Dismiss";
      close.setAttribute("aria-label", "Dismiss");
      (el.tagName === "TR" ? el.querySelector("p") || el : el).appendChild(close);
      kept.push(el);
    });
  }
  function headed(box, el) {
    var head = box.querySelector(":scope > h2");
    if (head) head.insertAdjacentElement("afterend", el);
    else box.appendChild(el);
  }
  function put(el) {
    var after = el.dataset.after && document.getElementById(el.dataset.after);
    if (after && (el.tagName !== "TR" || after.tagName === "TR")) {
      after.insertAdjacentElement("afterend", el);
      return el;
    }
    if (el.tagName === "TR") {  // its row is gone: the message stands in the RFQ (or the board) instead
      var said = el.querySelector("p") || el;
      said.dataset.kept = "";
      said.dataset.in = el.dataset.in || "";
      said.dataset.context = el.dataset.context || "";
      el = said;
    }
    var box = el.dataset.in && document.getElementById(el.dataset.in);
    if (!box || box.id === "rfqs" && !el.dataset.replaces) {
      box = fallback();
      if (!box) return null;
      if (el.dataset.context && !el.querySelector(".context")) {
        var about = document.createElement("strong");
        about.className = "context";
        about.textContent = el.dataset.context + ": ";
        el.insertAdjacentElement("afterbegin", about);
      }
      headed(box, el);
      return el;
    }
    if (el.dataset.replaces) {
      var prev = el.dataset.prev && document.getElementById(el.dataset.prev);
      if (prev && prev.parentNode === box) prev.insertAdjacentElement("afterend", el);
      else box.insertAdjacentElement("afterbegin", el);
      return el;
    }
    headed(box, el);
    return el;
  }
  // Where a message whose place is gone stands: the RFQ board, or (a batch session has none) the orders.
  function fallback() {
    var ids = ["board", "orders", "cut"];
    for (var i = 0; i < ids.length; i++) {
      var box = document.getElementById(ids[i]);
      if (box && !box.classList.contains("hidden")) return box;
    }
    return null;
  }
  function restore() {
    kept = kept.map(function (el) { return document.body.contains(el) ? el : put(el); }).filter(Boolean);
  }
  document.addEventListener("click", function (evt) {
    var close = evt.target.closest && evt.target.closest("[data-kept] .dismiss, tr[data-kept] .dismiss");
    if (!close) return;
    var el = close.closest("[data-kept]");
    kept = kept.filter(function (k) { return k !== el && !k.contains(el); });
    (el.closest("tr[data-kept]") || el).remove();
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    kept.forEach(function (el) { el.remove(); });
    kept = [];
    var rfq = evt.detail.elt && evt.detail.elt.closest && evt.detail.elt.closest(".rfq[id]");
    var prev = rfq && rfq.previousElementSibling;
    while (prev && !prev.id) prev = prev.previousElementSibling;
    acted = rfq ? { id: rfq.id, prev: prev ? prev.id : "" } : null;
  });
  document.addEventListener("htmx:afterSwap", function () { adopt(); restore(); });
  document.addEventListener("htmx:wsAfterMessage", restore);
  document.addEventListener("DOMContentLoaded", adopt);

  // The fair-rate hints: the oracle-implied rate (exact, from the server, in the prices panel's
  // data-fair) beside the RFQ form and on each RFQ, and each quote's distance from it. Display only.
  function fairTable() {
    var legs = document.getElementById("legs");
    try { return legs ? JSON.parse(legs.dataset.fair || "{}") : {}; } catch (e) { return {}; }
  }
  function short(text, places) {
    var n = Number(text);
    return isFinite(n) ? n.toFixed(places) : text;
  }
  function fairHints() {
    var table = fairTable();
    var form = document.querySelector("[data-testid=rfq-form]");
    var hint = document.getElementById("fair-hint");
    if (form && hint) {
      var give = form.querySelector("[name=give_leg]").value, get = form.querySelector("[name=get_leg]").value;
      var rate = table[give] && table[give][get];
      hint.textContent = give === get ? "" : rate ? "Fair at the latest prices: 1 " + give + " ≈ " + short(rate, 4) + " " + get + " (price of " + give + " / price of " + get + ")" : "No fair rate yet: waiting for prices.";
    }
    document.querySelectorAll("[data-fair-of]").forEach(function (el) {
      var pair = el.dataset.fairOf.split("/"), rate = table[pair[0]] && table[pair[0]][pair[1]];
      if (rate) el.textContent = short(rate, 4);
    });
    orderHint(table);
    document.querySelectorAll(".vs-fair[data-rate]").forEach(function (el) {
      var fair = table[el.dataset.give] && Number(table[el.dataset.give][el.dataset.get]);
      if (!fair) return;
      var pct = (Number(el.dataset.rate) / fair - 1) * 100;
      el.textContent = (pct >= 0 ? "+" : "") + pct.toFixed(2) + "%";
    });
  }
  // A batch session's order form: the fair rate for the pair chosen (also its limit's placeholder), how
  // far the limit typed is from it, and what is available to give.
  function orderHint(table) {
    var form = document.querySelector("[data-testid=order-form]");
    var hint = document.getElementById("order-fair-hint");
    if (!form || !hint) return;
    var give = form.querySelector("[name=give_leg]").value, get = form.querySelector("[name=get_leg]").value;
    var limit = form.querySelector("[name=limit_rate]");
    var rate = table[give] && table[give][get];
    var said = [];
    if (give === get) said.push("Choose two different legs.");
    else if (rate) said.push("Fair at the latest prices: 1 " + give + " ≈ " + short(rate, 4) + " " + get);
    else said.push("No fair rate yet: waiting for prices.");
    var typed = Number((limit.value || "").replace(",", "."));
    if (give !== get && rate && limit.value && isFinite(typed) && typed > 0) {
      var pct = (typed / Number(rate) - 1) * 100;
      said.push("your limit " + (pct >= 0 ? "+" : "") + pct.toFixed(2) + "% vs fair" + (pct > 0 ? ": it fills only if others give that much" : ""));
    }
    var available = document.querySelector("[data-testid='available-" + give + "']");
    if (available) said.push(available.textContent.trim() + " " + give + " available");
    hint.textContent = said.join(" · ");
    limit.placeholder = give !== get && rate ? short(rate, 4) : "rate";
  }
  document.addEventListener("change", function (evt) {
    if (evt.target.closest && evt.target.closest("[data-testid=rfq-form], [data-testid=order-form]")) fairHints();
  });
  document.addEventListener("input", function (evt) {
    if (evt.target.name === "limit_rate") fairHints();
  });
  document.addEventListener("htmx:afterSwap", fairHints);
  document.addEventListener("htmx:wsAfterMessage", fairHints);
  document.addEventListener("DOMContentLoaded", fairHints);

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
    document.querySelectorAll("#board button, #board input, #board select, #order-form button, #order-form input, #order-form select").forEach(function (el) {
      el.disabled = true;
    });
    var note = document.querySelector("[data-testid=closes]");
    if (note) note.textContent = "Trading closed at t2: the session settles at the fixing.";
  }

  // The next cut of a batch session: a countdown, then "clearing…" from its instant until the batch is
  // recorded (its push redraws the panel with the next cut). From that instant the server refuses to
  // cancel an order placed before it (it is in the batch clearing): its Cancel is disabled here too.
  function cutCountdown(now) {
    var cut = null, floor = document.querySelector(".floor[data-t2]");
    var closed = floor && now >= parseInt(floor.dataset.t2, 10);
    document.querySelectorAll("[data-cut]").forEach(function (el) {
      cut = parseInt(el.dataset.cut, 10);
      var ms = cut - now;
      if (closed) {
        el.textContent = "never: trading closed at t2";
        el.className = "cut-left";
      } else if (ms > 0) {
        var s = Math.ceil(ms / 1000);
        el.textContent = "in " + (s >= 60 ? left(ms) : s + "s");
        el.className = "cut-left" + (s <= 3 ? " soon" : "");
      } else {
        el.textContent = ms > -5000 ? "clearing…" : "clearing… waiting for the scheduler";
        el.className = "cut-left clearing";
      }
    });
    document.querySelectorAll("#orders button[data-placed]").forEach(function (button) {
      var inCut = cut !== null && now >= cut && parseInt(button.dataset.placed, 10) < cut;
      button.disabled = inCut;
      button.title = inCut ? "In the batch clearing now: it can no longer be cancelled" : "";
    });
  }

  function tick() {
    var now = Date.now();
    closeAtT2(now);
    cutCountdown(now);
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
