// The monitor's "Schedule an action" (templates/markets/monitor.html) sits in the live part and is kept as
// typed across its refreshes (hx-preserve). A refresh asked for before another answer replaced the live part
// (a scheduled action, a pause) would swap into the part no longer on the page, and htmx would then drop
// the kept form: such a stale answer is not swapped (the part on the page is newer already).
document.addEventListener("htmx:beforeOnLoad", function (evt) {
  var target = evt.detail && evt.detail.target;
  if (target && target.id === "monitor-live" && !document.body.contains(target)) evt.preventDefault();
});
