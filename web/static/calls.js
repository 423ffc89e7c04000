// Screen pop (来电弹屏): an agent's open pages listen to /calls/stream (Server-Sent Events) and
// show each pop — an inbound call, a task to work now — and open its page at once unless the
// agent is typing into a form. One tab opens the page; other tabs of the same agent only show it.
(function () {
  "use strict";
  var tag = document.getElementById("pop-stream");
  if (!tag || !window.EventSource) { return; }
  var labels = tag.dataset;
  var seenKey = "kefu.pop.seen." + tag.dataset.user;
  var autoKey = "kefu.pop.auto";
  var dirty = false;

  function stored(key, fallback) {
    try { return window.localStorage.getItem(key) || fallback; } catch (e) { return fallback; }
  }
  function store(key, value) {
    try { window.localStorage.setItem(key, String(value)); } catch (e) { /* private mode */ }
  }

  // Typing into a form must not be thrown away by a navigation.
  document.addEventListener("input", function (e) { if (e.target.form) { dirty = true; } }, true);
  document.addEventListener("submit", function () { dirty = false; }, true);

  function el(name, className, text) {
    var node = document.createElement(name);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function box() {
    var holder = document.getElementById("call-pops");
    if (!holder) {
      holder = el("div", "call-pops");
      holder.id = "call-pops";
      holder.setAttribute("aria-live", "assertive");
      document.body.appendChild(holder);
    }
    return holder;
  }

  function show(pop) {
    var card = el("div", "call-pop " + pop.kind);
    card.setAttribute("role", "alertdialog");
    card.appendChild(el("strong", "call-pop-title", pop.title));
    var p = pop.payload || {};
    if (p.caller) { card.appendChild(el("div", "call-pop-line", labels.labelCaller + "：" + p.caller)); }
    if (p.level_label) {
      card.appendChild(el("div", "call-pop-line level-" + (p.level || ""), labels.labelLevel + "：" + p.level_label
        + (p.name ? " · " + p.name : "")));
    }
    var actions = el("div", "call-pop-actions");
    var open = el("a", "button primary", pop.kind === "inbound_call" ? labels.labelOpenCall : labels.labelOpen);
    open.href = pop.url;
    var close = el("button", "link", labels.labelClose);
    close.type = "button";
    close.addEventListener("click", function () { card.remove(); });
    var auto = el("label", "call-pop-auto");
    var box_ = el("input");
    box_.type = "checkbox";
    box_.checked = stored(autoKey, "1") === "1";
    box_.addEventListener("change", function () { store(autoKey, box_.checked ? "1" : "0"); });
    auto.appendChild(box_);
    auto.appendChild(document.createTextNode(" " + labels.labelAuto));
    actions.appendChild(open);
    actions.appendChild(close);
    actions.appendChild(auto);
    card.appendChild(actions);
    box().appendChild(card);
    open.focus();
  }

  function handle(pop) {
    var seen = parseInt(stored(seenKey, "0"), 10) || 0;
    var first = pop.id > seen;  // no other tab of this agent took it yet
    if (first) { store(seenKey, pop.id); }
    show(pop);
    if (first && !dirty && stored(autoKey, "1") === "1" && pop.url) {
      window.location.assign(pop.url);
    }
  }

  var after = parseInt(stored(seenKey, "0"), 10) || parseInt(tag.dataset.last || "0", 10) || 0;
  var source = new EventSource(tag.dataset.stream + (after ? "?after=" + after : ""));
  source.addEventListener("pop", function (e) {
    try { handle(JSON.parse(e.data)); } catch (err) { /* a malformed pop must not stop the stream */ }
  });
})();
