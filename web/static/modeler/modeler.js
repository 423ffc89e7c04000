// The modeler page: open a deployed version, start from a template, import or download a .bpmn,
// check and deploy (POST /api/v1/definitions with the edited form schemas); the elements the
// server reports are marked in red and listed.
(function () {
  "use strict";

  var script = document.currentScript;
  var data = JSON.parse(document.getElementById("modeler-data").textContent);
  var T = data.strings;
  var fmt = window.KefuPanel.fmt;
  var locale = document.documentElement.lang || "zh-CN";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var $ = function (id) { return document.getElementById(id); };
  var state = { forms: {}, dirty: new Set(), fileName: "diagram.bpmn", changed: false, marked: [] };
  var modeler;

  fetch(script.dataset.descriptor).then(function (r) { return r.json(); }).then(start)
    .catch(function (err) { status(fmt(T.importFailed, { error: err }), "error"); });

  function start(descriptor) {
    var panel = window.BpmnJSPropertiesPanel;
    modeler = new window.BpmnJS({
      container: "#canvas",
      propertiesPanel: { parent: "#properties" },
      additionalModules: [panel.BpmnPropertiesPanelModule, panel.BpmnPropertiesProviderModule,
                          window.KefuTranslate(locale)],
      moddleExtensions: { spiffworkflow: descriptor }
    });
    window.kefuModeler = modeler;  // handy in the browser console
    new window.KefuPanel(modeler, $("kefu-panel"), { groups: data.groups, operations: data.operations,
      forms: state.forms, dirty: state.dirty, strings: T, locale: locale });
    modeler.on("commandStack.changed", function () { state.changed = true; });
    fillChoices();
    $("open").addEventListener("click", function () { openVersion($("open-key").value, $("open-version").value); });
    $("new").addEventListener("click", newFromTemplate);
    $("import").addEventListener("change", importFile);
    $("download").addEventListener("click", download);
    $("check").addEventListener("click", function () { submit(true); });
    $("deploy").addEventListener("click", function () { submit(false); });
    document.querySelectorAll("[data-open-key]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        openVersion(link.dataset.openKey, link.dataset.openVersion);
        window.scrollTo(0, 0);
      });
    });
    document.querySelectorAll(".preview-migration").forEach(function (button) {
      button.addEventListener("click", function () { previewMigration(button); });
    });
    var wanted = new URLSearchParams(location.search);
    if (wanted.get("key")) { openVersion(wanted.get("key"), wanted.get("version") || ""); }
    else if (data.templates.length && !data.processes.length) { newFromTemplate(); }
    document.body.dataset.modelerReady = "1";
  }

  function fillChoices() {
    var key = $("open-key"), version = $("open-version"), template = $("template");
    function versions() {
      var process = data.processes.filter(function (p) { return p.key === key.value; })[0];
      version.innerHTML = "";
      (process ? process.versions : []).forEach(function (v, i) {
        var option = document.createElement("option");
        option.value = v.version;
        option.textContent = "v" + v.version + (i === 0 ? " ★" : "") + (v.summary ? " · " + (v.summary.length > 60 ? v.summary.slice(0, 59) + "…" : v.summary) : "");
        version.appendChild(option);
      });
    }
    key.addEventListener("change", versions);
    versions();
    template.innerHTML = "";
    data.templates.forEach(function (t) {
      var option = document.createElement("option");
      option.value = t.name;
      option.textContent = t.title;
      template.appendChild(option);
    });
  }

  function status(text, kind) {
    var box = $("status");
    box.textContent = text;
    box.className = "modeler-status " + (kind || "");
  }

  function confirmDiscard() { return !state.changed || window.confirm(T.unsaved); }

  function resetForms(forms) {
    Object.keys(state.forms).forEach(function (k) { delete state.forms[k]; });
    Object.assign(state.forms, forms || {});
    state.dirty.clear();
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      return r.ok ? r.json() : Promise.reject(fmt(T.requestFailed, { status: r.status }));
    });
  }

  function getText(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : Promise.reject(fmt(T.requestFailed, { status: r.status }));
    });
  }

  function load(xml) {
    clearErrors();
    return modeler.importXML(xml).then(function (result) {
      fit(modeler.get("canvas"));
      state.changed = false;
      return result;
    });
  }

  // Fit the whole diagram beside the palette, which covers the canvas's left edge.
  function fit(canvas) {
    var room = 135, margin = 16;
    canvas.zoom("fit-viewport", "auto");
    var box = canvas.viewbox();
    if (!box.inner.width || !box.outer.width) { return; }
    var scale = Math.min(1, (box.outer.width - room - margin) / box.inner.width,
                         (box.outer.height - 2 * margin) / box.inner.height);
    canvas.viewbox({ x: box.inner.x - room / scale, y: box.inner.y - margin / scale,
                     width: box.outer.width / scale, height: box.outer.height / scale });
  }

  function openVersion(key, version) {
    if (!key || !confirmDiscard()) { return; }
    status(T.loading);
    var query = version ? "?version=" + encodeURIComponent(version) : "";
    var base = "/api/v1/definitions/" + encodeURIComponent(key);
    Promise.all([getText(base + "/bpmn" + query), getJson(base + query)]).then(function (both) {
      resetForms(both[1].forms);
      state.fileName = key + ".bpmn";
      return load(both[0]).then(function () {
        status(fmt(T.opened, { name: both[1].name, version: both[1].version }), "ok");
      });
    }).catch(function (err) { status(fmt(T.importFailed, { error: err.message || err }), "error"); });
  }

  function newFromTemplate() {
    var name = $("template").value;
    if (!name || !confirmDiscard()) { return; }
    getText("/modeler/templates/" + encodeURIComponent(name) + ".bpmn").then(function (xml) {
      resetForms({});
      state.fileName = name + ".bpmn";
      return load(xml).then(function () { status(fmt(T.fromTemplate, { name: name }), "ok"); });
    }).catch(function (err) { status(fmt(T.importFailed, { error: err.message || err }), "error"); });
  }

  // A diagram from elsewhere (Kefu, Camunda or bpmn.io); a process Kefu already runs brings its
  // current forms along, so that they show in the panel and are kept on deployment.
  function importFile(event) {
    var file = event.target.files[0];
    event.target.value = "";
    if (!file || !confirmDiscard()) { return; }
    file.text().then(function (xml) {
      resetForms({});
      state.fileName = file.name;
      return load(xml).then(function (result) {
        var process = modeler.getDefinitions().get("rootElements").filter(function (r) {
          return r.$instanceOf("bpmn:Process");
        })[0];
        var known = process && data.processes.some(function (p) { return p.key === process.id; });
        var note = (result.warnings || []).length ? " (" + result.warnings.length + " ⚠)" : "";
        status(fmt(T.imported, { file: file.name }) + note, "ok");
        if (known) {
          getJson("/api/v1/definitions/" + encodeURIComponent(process.id)).then(function (d) {
            Object.keys(d.forms).forEach(function (k) { if (!(k in state.forms)) { state.forms[k] = d.forms[k]; } });
          });
        }
      });
    }).catch(function (err) { status(fmt(T.importFailed, { error: err.message || err }), "error"); });
  }

  function download() {
    modeler.saveXML({ format: true }).then(function (result) {
      var link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([result.xml], { type: "application/xml" }));
      link.download = state.fileName;
      document.body.appendChild(link);
      link.click();
      setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    });
  }

  function submit(dryRun) {
    if (document.activeElement && document.activeElement.blur) { document.activeElement.blur(); }
    status(dryRun ? T.checking : T.deploying);
    clearErrors();
    modeler.saveXML({ format: true }).then(function (result) {
      var body = new FormData();
      body.append("file", new Blob([result.xml], { type: "application/xml" }), state.fileName);
      state.dirty.forEach(function (name) {
        if (state.forms[name]) {
          body.append(name, new Blob([JSON.stringify(state.forms[name], null, 2)], { type: "application/json" }), name);
        }
      });
      body.append("summary", $("summary").value);
      if (dryRun) { body.append("dry_run", "1"); }
      return fetch("/api/v1/definitions", { method: "POST", body: body, credentials: "same-origin",
                                            headers: { "X-CSRFToken": csrf, Accept: "application/json" } });
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (response.status === 201) { deployed(answer); }
        else if (response.ok) { status(T.valid, "ok"); }
        else if (response.status === 422 && answer.errors) { showErrors(answer.errors); }
        else { status(answer.message || fmt(T.requestFailed, { status: response.status }), "error"); }
      });
    }).catch(function (err) { status(fmt(T.requestFailed, { status: err.message || err }), "error"); });
  }

  function deployed(answer) {
    status(fmt(T.deployed, { key: answer.key, version: answer.version }), "ok");
    state.dirty.clear();
    state.changed = false;
    state.fileName = answer.key + ".bpmn";
    $("summary").value = "";
    var process = data.processes.filter(function (p) { return p.key === answer.key; })[0];
    if (!process) {
      process = { key: answer.key, name: answer.name, versions: [] };
      data.processes.push(process);
      var option = document.createElement("option");
      option.value = answer.key;
      option.textContent = answer.name + " (" + answer.key + ")";
      $("open-key").appendChild(option);
    }
    process.versions.unshift({ version: answer.version, summary: "" });
    $("open-key").value = answer.key;
    $("open-key").dispatchEvent(new Event("change"));
  }

  function clearErrors() {
    var canvas = modeler && modeler.get("canvas");
    state.marked.forEach(function (id) { try { canvas.removeMarker(id, "kefu-error"); } catch (e) { /* gone */ } });
    state.marked = [];
    $("errors").innerHTML = "";
    $("errors").hidden = true;
  }

  function showErrors(errors) {
    var registry = modeler.get("elementRegistry"), canvas = modeler.get("canvas");
    var list = $("errors");
    errors.forEach(function (error) {
      var element = error.element_id ? registry.get(error.element_id) : null;
      if (element) {
        canvas.addMarker(element.id, "kefu-error");
        state.marked.push(element.id);
      }
      var name = element ? (element.businessObject.name || element.id) + " (" + element.id + ")"
                         : (error.element_id || T.wholeDiagram);
      var item = document.createElement("li");
      item.dataset.elementId = error.element_id || "";
      item.innerHTML = "<b></b> <span></span>";
      item.firstChild.textContent = name;
      item.lastChild.textContent = error.message;
      item.title = error.detail || "";
      if (element) {
        item.addEventListener("click", function () {
          modeler.get("selection").select(element);
          canvas.scrollToElement(element);
        });
      }
      list.appendChild(item);
    });
    list.hidden = false;
    status(fmt(T.problems, { n: errors.length }), "error");
  }

  // -- moving running cases to the latest version ---------------------------------------------
  function previewMigration(button) {
    var box = button.parentNode.querySelector(".migration-plan");
    box.textContent = T.loading;
    getJson("/api/v1/instances/" + button.dataset.id + "/migration").then(function (plan) {
      box.innerHTML = "";
      if (!plan.allowed) {
        box.appendChild(textNode("p", plan.reason, "kp-warn"));
        return;
      }
      box.appendChild(textNode("p", T.waitingOn + ": " + plan.waiting.map(function (w) { return w.name; }).join("、")));
      var list = document.createElement("ul");
      plan.changes.forEach(function (c) {
        list.appendChild(textNode("li", c.name + " (" + c.element_id + ") " + T[c.change] +
          (c.fields.length ? ": " + c.fields.join("; ") : "")));
      });
      if (!plan.changes.length) { list.appendChild(textNode("li", T.noChanges)); }
      box.appendChild(list);
      var move = document.createElement("button");
      move.type = "button";
      move.className = "primary";
      move.textContent = T.migrate;
      move.addEventListener("click", function () { migrate(button.dataset.id, plan, box); });
      box.appendChild(move);
    }).catch(function (err) { box.textContent = String(err); });
  }

  function migrate(id, plan, box) {
    fetch("/api/v1/instances/" + id + "/migrate", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify({ version: plan.to_version, lock_version: plan.lock_version })
    }).then(function (r) {
      return r.json().then(function (answer) {
        box.innerHTML = "";
        box.appendChild(textNode("p", r.ok ? fmt(T.moved, { version: answer.version }) : answer.message,
                                 r.ok ? "kp-ok" : "kp-warn"));
      });
    });
  }

  function textNode(tag, text, cls) {
    var node = document.createElement(tag);
    node.textContent = text;
    if (cls) { node.className = cls; }
    return node;
  }
})();
