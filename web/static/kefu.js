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

  // A field required only in some cases (the form's if/then rules): its star follows the control.
  document.querySelectorAll(".req-when[data-when]").forEach(function (star) {
    var form = star.closest("form");
    if (!form) { return; }
    var rules = JSON.parse(star.dataset.when);
    function valueOf(name) {
      var control = form.elements[name];
      if (!control) { return ""; }
      if (control.type === "checkbox") { return control.checked ? "true" : "false"; }
      return control.value || "";
    }
    function update() {
      star.hidden = !rules.some(function (r) { return (r[1].indexOf(valueOf(r[0])) >= 0) !== r[2]; });
    }
    rules.forEach(function (r) {
      var control = form.elements[r[0]];
      if (control && control.addEventListener) { control.addEventListener("change", update); }
    });
    update();
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
