// Kefu's small client helpers: self-refreshing panels and the customer history lookup.
(function () {
  "use strict";

  // Any element with data-refresh reloads its HTML from that URL every data-seconds seconds.
  document.querySelectorAll("[data-refresh]").forEach(function (panel) {
    var seconds = parseInt(panel.dataset.seconds || "10", 10);
    setInterval(function () {
      // Not while someone is choosing or typing in the panel (an alert's reassign list, a note).
      var active = document.activeElement;
      if (active && active !== document.body && panel.contains(active) && /^(SELECT|INPUT|TEXTAREA)$/.test(active.tagName)) { return; }
      fetch(panel.dataset.refresh, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { panel.innerHTML = html; })
        .catch(function () { /* keep the last good content; the next round retries */ });
    }, seconds * 1000);
  });

  // A choice with facts to ask (陈述要素, the form's x-prompts): show the chosen one's.
  document.querySelectorAll("[data-prompts-for]").forEach(function (box) {
    var select = document.getElementById(box.dataset.promptsFor);
    if (!select) { return; }
    select.addEventListener("change", function () {
      box.querySelectorAll("[data-choice]").forEach(function (p) { p.hidden = p.dataset.choice !== select.value; });
    });
  });

  // While recording a case, list the customer's earlier cases as soon as the number is typed.
  var history = document.getElementById("history");
  var phone = document.querySelector(".start-form [name=customer_phone]");
  if (history && phone) {
    var timer = null;
    phone.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var value = phone.value.trim();
        if (value.length < 5) { return; }
        fetch(history.dataset.url + "&customer_phone=" + encodeURIComponent(value), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) { history.innerHTML = html; })
          .catch(function () {});
      }, 300);
    });
  }
})();
