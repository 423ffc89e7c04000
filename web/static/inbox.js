// The live inbox: the rows reload themselves every few seconds (GET /inbox/rows with the page's
// filters), new or returned steps are marked and counted in the tab's title, and every row's SLA
// countdown ("还剩 1小时20分" / "已超时 35分") ticks in the browser from the step's due time.
(function () {
  "use strict";
  var table = document.getElementById("inbox");
  if (!table) { return; }
  var body = table.tBodies[0];
  var data = table.dataset;
  var seconds = parseInt(data.seconds || "15", 10);
  var badge = document.getElementById("new-work");
  var count = document.getElementById("inbox-count");
  // The server's clock minus ours: countdowns follow the server's time, not a wrong desk clock.
  var skew = data.now ? Date.parse(data.now) - Date.now() : 0;
  var fresh = 0;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_m, key) { return String(values[key]); });
  }

  function span(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var d = Math.floor(minutes / 1440), h = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    if (d) { return fill(data.days, { d: d, h: h }); }
    if (h) { return fill(data.hours, { h: h, m: m }); }
    return fill(data.minutes, { m: m });
  }

  function tick() {
    var now = Date.now() + skew;
    body.querySelectorAll(".countdown[data-due]").forEach(function (cell) {
      if (cell.dataset.paused) { cell.textContent = data.paused; return; }
      var left = Date.parse(cell.dataset.due) - now;
      cell.textContent = left >= 0 ? fill(data.left, { span: span(left) }) : fill(data.over, { span: span(left) });
      cell.classList.toggle("late", left < 0);
    });
  }

  function ids() {
    var seen = {};
    body.querySelectorAll("tr[data-task-id]").forEach(function (row) { seen[row.dataset.taskId] = true; });
    return seen;
  }

  function signal() {
    if (badge) {
      badge.hidden = fresh === 0;
      badge.textContent = fill(data["new"], { n: fresh });
    }
    document.title = (fresh ? "(" + fresh + ") " : "") + data.title;
  }

  function refresh() {
    fetch(data.rows, { credentials: "same-origin", headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (r) {
        var total = r.headers.get("X-Kefu-Total");
        // Not rows (signed out: the sign-in page): keep what is shown rather than paste a page in.
        if (!r.ok || total === null) { return Promise.reject(r.status); }
        var serverNow = r.headers.get("Date");
        if (serverNow) { skew = Date.parse(serverNow) - Date.now(); }
        return r.text().then(function (html) { return { html: html, total: total }; });
      })
      .then(function (result) {
        var before = ids();
        var ticked = {};
        body.querySelectorAll("input[name=task_id]:checked").forEach(function (box) { ticked[box.value] = true; });
        body.innerHTML = result.html;
        body.querySelectorAll("tr[data-task-id]").forEach(function (row) {
          if (!before[row.dataset.taskId]) { row.classList.add("fresh"); fresh += 1; }
          var box = row.querySelector("input[name=task_id]");
          if (box && ticked[box.value]) { box.checked = true; }
        });
        if (count) { count.textContent = fill(count.dataset.template, { n: result.total }); }
        signal();
        tick();
      })
      .catch(function () { /* keep the rows shown; the next round retries */ });
  }

  // Looking at the page acknowledges the new work.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && fresh) { setTimeout(function () { fresh = 0; signal(); }, 5000); }
  });
  var all = document.getElementById("tick-all");
  if (all) {
    all.addEventListener("change", function () {
      body.querySelectorAll("input[name=task_id]").forEach(function (box) { box.checked = all.checked; });
    });
  }
  tick();
  setInterval(tick, 20000);
  setInterval(refresh, seconds * 1000);
})();
