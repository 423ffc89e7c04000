// The case page's diagram: bpmn-js's navigated viewer (pan and zoom) showing the case's version,
// with completed elements, the active ones and any connector incident marked.
(function () {
  "use strict";

  var box = document.getElementById("case-diagram");
  if (!box || !window.BpmnJS) { return; }
  var states = JSON.parse(document.getElementById("case-diagram-data").textContent);
  var viewer = new window.BpmnJS({ container: box });

  fetch(box.dataset.bpmnUrl, { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      var canvas = viewer.get("canvas"), registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport", "auto");
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
      box.dataset.ready = "1";
    })
    .catch(function (err) {
      box.textContent = String(err);
      box.dataset.ready = "error";
    });
})();
