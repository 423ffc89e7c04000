// The case page's diagram: bpmn-js's navigated viewer (pan and zoom) showing the case's version,
// with completed elements, the active ones and any connector incident marked. It opens readable:
// fitted to the box's width but never below MIN_SCALE (labels stay legible), with the current step
// in view; the buttons above it zoom in, out and back to that view.
(function () {
  "use strict";

  var MIN_SCALE = 0.9, MAX_SCALE = 1.4, MARGIN = 24;
  var box = document.getElementById("case-diagram");
  if (!box || !window.BpmnJS) { return; }
  var states = JSON.parse(document.getElementById("case-diagram-data").textContent);
  var viewer = new window.BpmnJS({ container: box });

  fetch(box.dataset.bpmnUrl, { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      var canvas = viewer.get("canvas"), registry = viewer.get("elementRegistry");
      function mark(ids, marker) {
        (ids || []).forEach(function (id) { if (registry.get(id)) { canvas.addMarker(id, marker); } });
      }
      mark(states.completed, "kefu-done");
      mark(states.active, "kefu-active");
      mark(states.incidents, "kefu-incident");
      // A flow taken is the connection between two elements the case went through in that order.
      var taken = {};
      (states.flows || []).forEach(function (pair) { taken[pair[0] + ">" + pair[1]] = true; });
      registry.filter(function (e) { return e.waypoints && e.source && e.target; }).forEach(function (c) {
        if (taken[c.source.id + ">" + c.target.id]) { canvas.addMarker(c.id, "kefu-taken"); }
      });

      // What to keep in view: the current step, else the last incident, else the whole diagram.
      function focusElement() {
        var ids = (states.active || []).concat(states.incidents || []);
        for (var i = 0; i < ids.length; i++) {
          var el = registry.get(ids[i]);
          if (el && !el.waypoints) { return el; }
        }
        return null;
      }
      function show(scale) {
        var vb = canvas.viewbox(), inner = vb.inner, outer = vb.outer;
        var w = outer.width / scale, h = outer.height / scale, el = focusElement();
        // From the diagram's top left corner, moved only as far as needed to centre the step.
        var x = inner.x - MARGIN, y = inner.y - MARGIN;
        if (el && el.x + el.width + MARGIN > x + w) { x = Math.max(x, el.x + el.width / 2 - w / 2); }
        if (el && el.y + el.height + MARGIN > y + h) { y = Math.max(y, el.y + el.height / 2 - h / 2); }
        canvas.viewbox({ x: x, y: y, width: w, height: h });
        box.dataset.scale = canvas.zoom().toFixed(2);
      }
      function fit() {
        var vb = canvas.viewbox();
        var width = vb.outer.width / (vb.inner.width + 2 * MARGIN);
        show(Math.max(MIN_SCALE, Math.min(MAX_SCALE, width)));
      }
      function zoomBy(factor) {
        canvas.zoom(Math.max(0.2, Math.min(4, canvas.zoom() * factor)));
        box.dataset.scale = canvas.zoom().toFixed(2);
      }
      fit();
      document.querySelectorAll("[data-diagram-zoom]").forEach(function (button) {
        button.addEventListener("click", function () {
          var how = button.dataset.diagramZoom;
          if (how === "in") { zoomBy(1.25); } else if (how === "out") { zoomBy(0.8); } else { fit(); }
        });
        button.disabled = false;
      });
      box.dataset.ready = "1";
    })
    .catch(function (err) {
      box.textContent = String(err);
      box.dataset.ready = "error";
    });
})();
