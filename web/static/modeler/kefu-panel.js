// Kefu's properties section beside bpmn-js's stock panel: what Kefu reads from an element (the
// lane's group, a task's form with a live preview, its time limit, a service task's connector
// operation, timers, message names), written into the diagram as SpiffWorkflow extension
// elements so that SpiffBpmnParser reads them. Plain DOM: the stock panel's UMD bundle does not
// export its entry components, and every edit goes through bpmn-js commands (undo works).
(function () {
  "use strict";

  var FORM = "formJsonSchemaFilename";

  function fmt(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (all, key) {
      return values && values[key] !== undefined ? values[key] : all;
    });
  }

  // el("label", {class: "x"}, [children]) → an element; strings become text nodes.
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) { return; }
      if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), value); }
      else if (key === "value") { node.value = value; }
      else if (value === true) { node.setAttribute(key, ""); }
      else { node.setAttribute(key, value); }
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function KefuPanel(modeler, container, ctx) {
    this.modeler = modeler;
    this.container = container;
    this.ctx = ctx;          // {groups, operations, forms, dirty, strings, locale}
    this.T = ctx.strings;
    this.element = null;
    var self = this;
    modeler.on("selection.changed", function (event) {
      self.render(event.newSelection.length === 1 ? event.newSelection[0] : null);
    });
    // Undo/redo and edits in the stock panel: redraw, unless the user is typing in ours.
    modeler.on("commandStack.changed", function () {
      if (!container.contains(document.activeElement)) { self.render(self.element); }
    });
    modeler.on("import.done", function () { self.render(null); });
    this.render(null);
  }

  var P = KefuPanel.prototype;

  P.service = function (name) { return this.modeler.get(name); };

  P.render = function (element) {
    if (element && !this.service("elementRegistry").get(element.id)) { element = null; }
    this.element = element;
    var T = this.T;
    this.container.innerHTML = "";
    this.container.appendChild(el("h3", {}, [T.panelTitle]));
    if (!element) {
      this.container.appendChild(el("p", { "class": "hint" }, [T.selectElement]));
      return;
    }
    var bo = element.businessObject;
    var sections = [];
    if (is(bo, "bpmn:Lane")) { sections.push(this.laneSection(element)); }
    if (is(bo, "bpmn:UserTask")) {
      sections.push(this.taskLaneInfo(element), this.formSection(element), this.slaSection(element, true));
    }
    if (is(bo, "bpmn:StartEvent") && !(bo.eventDefinitions || []).length) {
      sections.push(this.formSection(element), this.slaSection(element, false),
                    this.propertyField(element, "kefu.reference_prefix", T.prefix, "TS"));
    }
    if (is(bo, "bpmn:ServiceTask")) { sections.push(this.operationSection(element)); }
    var timer = eventDefinition(bo, "bpmn:TimerEventDefinition");
    if (timer) { sections.push(this.timerSection(element, timer)); }
    if (eventDefinition(bo, "bpmn:MessageEventDefinition") || is(bo, "bpmn:ReceiveTask") || is(bo, "bpmn:SendTask")) {
      sections.push(this.messageSection(element));
    }
    sections = sections.filter(Boolean);
    if (!sections.length) { sections.push(el("p", { "class": "hint" }, [T.nothingHere])); }
    var box = this.container;
    box.appendChild(el("p", { "class": "element-name" }, [(bo.name || bo.id) + " · " + bo.id]));
    sections.forEach(function (section) { box.appendChild(section); });
  };

  // -- reading and writing spiffworkflow:properties ------------------------------------------
  P.properties = function (bo) {
    var values = {};
    var holder = extension(bo, "spiffworkflow:Properties");
    ((holder && holder.get("properties")) || []).forEach(function (p) { values[p.name] = p.value; });
    return values;
  };

  P.ensureExtensions = function (element) {
    var bo = element.businessObject;
    var ext = bo.get("extensionElements");
    if (!ext) {
      ext = this.service("moddle").create("bpmn:ExtensionElements", { values: [] });
      this.service("modeling").updateProperties(element, { extensionElements: ext });
    }
    return ext;
  };

  P.ensureExtension = function (element, type, attrs) {
    var ext = this.ensureExtensions(element);
    var found = extension(element.businessObject, type);
    if (!found) {
      found = this.service("moddle").create(type, attrs || {});
      this.service("modeling").updateModdleProperties(element, ext, { values: ext.get("values").concat(found) });
    }
    return found;
  };

  P.setProperty = function (element, name, value) {
    var modeling = this.service("modeling");
    value = (value === null || value === undefined) ? "" : String(value).trim();
    var holder = extension(element.businessObject, "spiffworkflow:Properties");
    var list = holder ? holder.get("properties") : [];
    var existing = list.filter(function (p) { return p.name === name; })[0];
    if (!value) {
      if (existing) {
        modeling.updateModdleProperties(element, holder, { properties: list.filter(function (p) { return p !== existing; }) });
      }
      return;
    }
    if (existing) {
      modeling.updateModdleProperties(element, existing, { value: value });
      return;
    }
    holder = this.ensureExtension(element, "spiffworkflow:Properties", { properties: [] });
    var created = this.service("moddle").create("spiffworkflow:Property", { name: name, value: value });
    modeling.updateModdleProperties(element, holder, { properties: holder.get("properties").concat(created) });
  };

  // -- fields ----------------------------------------------------------------------------------
  function field(label, control, hint) {
    return el("label", { "class": "kp-field" }, [label, control, hint ? el("span", { "class": "hint" }, [hint]) : null]);
  }

  P.propertyField = function (element, name, label, placeholder, hint) {
    var self = this;
    var input = el("input", {
      value: this.properties(element.businessObject)[name] || "", placeholder: placeholder,
      "data-property": name, onchange: function () { self.setProperty(element, name, input.value); }
    });
    return field(label, input, hint);
  };

  P.laneSection = function (element) {
    var T = this.T, self = this, name = element.businessObject.name || "";
    var match = this.groupOf(name);
    var select = el("select", { "data-kefu": "lane-group", onchange: function () {
      var group = self.ctx.groups.filter(function (g) { return g.code === select.value; })[0];
      if (group) { self.service("modeling").updateProperties(element, { name: group.name }); }
    } }, [el("option", { value: "" }, [T.chooseGroup])].concat(this.ctx.groups.map(function (g) {
      return el("option", { value: g.code, selected: !!match && match.code === g.code }, [g.name + " (" + g.code + ")"]);
    })));
    return el("fieldset", {}, [el("legend", {}, [T.group]), select,
      name && !match ? el("p", { "class": "kp-warn" }, [fmt(T.unknownGroup, { name: name })]) : null]);
  };

  P.groupOf = function (label) {
    label = (label || "").trim();
    return this.ctx.groups.filter(function (g) { return g.code === label || g.name === label; })[0] || null;
  };

  P.taskLaneInfo = function (element) {
    var T = this.T, bo = element.businessObject;
    var lane = this.service("elementRegistry").filter(function (e) {
      return is(e.businessObject, "bpmn:Lane") && (e.businessObject.get("flowNodeRef") || []).indexOf(bo) >= 0;
    })[0];
    var parts = [];
    if (lane) {
      var group = this.groupOf(lane.businessObject.name);
      parts.push(el("p", {}, [T.lane + ": " + (lane.businessObject.name || lane.id) +
        (group ? " → " + group.name + " (" + group.code + ")" : "")]));
      if (!group) { parts.push(el("p", { "class": "kp-warn" }, [fmt(T.unknownGroup, { name: lane.businessObject.name || "" })])); }
    } else {
      parts.push(el("p", { "class": "kp-warn" }, [T.noLane]));
    }
    // Diagrams from the Camunda modeler name groups and forms in attributes Kefu does not read.
    var attrs = bo.$attrs || {};
    Object.keys(attrs).forEach(function (key) {
      if (/:candidateGroups$/.test(key)) { parts.push(el("p", { "class": "kp-hint" }, [fmt(T.camundaGroups, { groups: attrs[key] })])); }
      if (/:formKey$/.test(key)) { parts.push(el("p", { "class": "kp-hint" }, [fmt(T.camundaForm, { key: attrs[key] })])); }
    });
    return el("fieldset", {}, [el("legend", {}, [T.group])].concat(parts));
  };

  // -- forms -----------------------------------------------------------------------------------
  P.formSection = function (element) {
    var T = this.T, self = this, ctx = this.ctx;
    var name = this.properties(element.businessObject)[FORM] || "";
    var list = el("datalist", { id: "kp-forms" }, Object.keys(ctx.forms).sort().map(function (n) {
      return el("option", { value: n });
    }));
    var input = el("input", { value: name, list: "kp-forms", "data-property": FORM, placeholder: "xxx.schema.json",
      onchange: function () { self.setProperty(element, FORM, input.value); self.render(element); } });
    var create = el("button", { type: "button", onclick: function () {
      var fresh = (element.businessObject.id || "form") + ".schema.json";
      if (!ctx.forms[fresh]) {
        ctx.forms[fresh] = { "$schema": "https://json-schema.org/draft/2020-12/schema",
          title: element.businessObject.name || fresh, type: "object", properties: {}, required: [] };
        ctx.dirty.add(fresh);
      }
      self.setProperty(element, FORM, fresh);
      self.render(element);
    } }, [T.newForm]);
    var parts = [el("legend", {}, [T.form]), field(T.formFile, el("span", { "class": "kp-row" }, [input, create])), list];
    if (name) { parts.push(this.schemaEditor(name)); }
    return el("fieldset", {}, parts);
  };

  P.schemaEditor = function (name) {
    var T = this.T, ctx = this.ctx, self = this;
    var schema = ctx.forms[name];
    var problem = el("p", { "class": "kp-warn" }, schema ? [] : [fmt(T.formMissing, { name: name })]);
    var preview = el("div", { "class": "form-preview" });
    var text = el("textarea", { rows: "12", spellcheck: "false", "data-kefu": "schema", oninput: function () {
      try {
        var parsed = JSON.parse(text.value);
        ctx.forms[name] = parsed;
        ctx.dirty.add(name);
        problem.textContent = "";
        self.renderPreview(preview, parsed);
      } catch (err) {
        problem.textContent = fmt(T.badJson, { error: err.message });
      }
    } });
    text.value = schema ? JSON.stringify(schema, null, 2) : "";
    if (schema) { this.renderPreview(preview, schema); }
    return el("div", { "class": "schema-editor" }, [field(T.schema, text), problem,
      el("div", { "class": "kp-sub" }, [T.preview]), preview]);
  };

  // A compact rendering of the form the way agents will see it (labels, widgets, required marks).
  P.renderPreview = function (box, schema) {
    var english = (this.ctx.locale || "").indexOf("en") === 0;
    function label(node, fallback) { return (english && node["x-title-en"]) || node.title || fallback; }
    box.innerHTML = "";
    var required = schema.required || [];
    var props = schema.properties || {};
    box.appendChild(el("div", { "class": "fp-title" }, [label(schema, "")]));
    Object.keys(props).forEach(function (key) {
      var node = props[key] || {};
      var options = node.oneOf || node.anyOf || (node.enum || []).map(function (v) { return { "const": v }; });
      var control;
      if (options.length && options.every(function (o) { return "const" in o; })) {
        control = el("select", {}, options.map(function (o) { return el("option", {}, [String(label(o, o["const"]))]); }));
      } else if (node.type === "boolean") {
        control = el("input", { type: "checkbox" });
      } else if (node["x-widget"] === "textarea") {
        control = el("textarea", { rows: "2" });
      } else if (node.format === "date-time") {
        control = el("input", { type: "datetime-local" });
      } else if (node.type === "integer" || node.type === "number") {
        control = el("input", { type: "number" });
      } else {
        control = el("input", { maxlength: node.maxLength });
      }
      var mark = required.indexOf(key) >= 0 ? el("span", { "class": "req" }, [" *"]) : null;
      box.appendChild(el("label", { "class": "fp-field" }, [label(node, key), mark, control]));
    });
  };

  // -- time limits -----------------------------------------------------------------------------
  P.slaSection = function (element, userTask) {
    var T = this.T, self = this;
    var props = this.properties(element.businessObject);
    var calendar = el("select", { "data-property": "kefu.sla.calendar", onchange: function () {
      self.setProperty(element, "kefu.sla.calendar", calendar.value);
    } }, [["24x7", T.cal24x7], ["workdays", T.calWorkdays]].map(function (c) {
      return el("option", { value: c[0], selected: (props["kefu.sla.calendar"] || "24x7") === c[0] }, [c[1]]);
    }));
    var parts = [el("legend", {}, [T.timeLimit]),
      this.propertyField(element, "kefu.sla.duration", T.duration, "PT24H", T.durationHint),
      field(T.calendar, calendar),
      this.propertyField(element, "kefu.sla.warn", T.warn, "0.8", T.warnHint),
      this.propertyField(element, "kefu.sla.escalations", T.escalations, "1.0:leader,1.5:manager", T.escalationsHint)];
    if (userTask) {
      parts.push(this.propertyField(element, "kefu.sla.due_var", T.dueVar, "", T.dueVarHint),
                 this.propertyField(element, "kefu.group_var", T.groupVar, "", T.groupVarHint));
    }
    return el("fieldset", {}, parts);
  };

  // -- service tasks ---------------------------------------------------------------------------
  P.operator = function (bo) { return extension(bo, "spiffworkflow:ServiceTaskOperator"); };

  P.operationSection = function (element) {
    var T = this.T, self = this, ops = this.ctx.operations;
    var operator = this.operator(element.businessObject);
    var current = operator ? operator.get("id") : "";
    var known = ops.filter(function (o) { return o.name === current; })[0];
    var options = [el("option", { value: "" }, [T.chooseOperation])].concat(ops.map(function (o) {
      return el("option", { value: o.name, selected: o.name === current }, [o.title + " · " + o.name]);
    }));
    if (current && !known) { options.push(el("option", { value: current, selected: true }, [current])); }
    var select = el("select", { "data-kefu": "operation", onchange: function () {
      self.setOperation(element, select.value);
      self.render(element);
    } }, options);
    var parts = [el("legend", {}, [T.operation]), select];
    if (!ops.length) { parts.push(el("p", { "class": "hint" }, [T.noOperations])); }
    if (operator) {
      var names = known ? known.required.concat(known.optional) : this.parameters(operator).map(function (p) { return p.id; });
      var values = {};
      this.parameters(operator).forEach(function (p) { values[p.id] = p.value; });
      parts.push(el("div", { "class": "kp-sub" }, [T.parameters]));
      names.forEach(function (name) {
        var required = known && known.required.indexOf(name) >= 0;
        var input = el("input", { value: values[name] || "", "data-param": name, onchange: function () {
          self.setParameter(element, name, input.value);
        } });
        parts.push(field(name + (required ? " *" : ""), input));
      });
      parts.push(el("span", { "class": "hint" }, [T.paramHint]));
      var result = el("input", { value: operator.get("resultVariable") || "", onchange: function () {
        self.service("modeling").updateModdleProperties(element, operator, { resultVariable: result.value.trim() || undefined });
      } });
      parts.push(field(T.resultVar, result));
      var wait = el("input", { type: "checkbox", checked: this.properties(element.businessObject)["kefu.wait"] !== "false",
        onchange: function () { self.setProperty(element, "kefu.wait", wait.checked ? "" : "false"); } });
      parts.push(el("label", { "class": "check" }, [wait, " " + T.waitResult]));
    }
    return el("fieldset", {}, parts);
  };

  P.parameters = function (operator) {
    var list = operator.get("parameterList");
    return list ? list.get("parameters") : [];
  };

  P.setOperation = function (element, name) {
    var modeling = this.service("modeling"), moddle = this.service("moddle");
    var operator = this.operator(element.businessObject);
    if (!name) {
      if (operator) {
        var ext = element.businessObject.get("extensionElements");
        modeling.updateModdleProperties(element, ext, { values: ext.get("values").filter(function (v) { return v !== operator; }) });
      }
      return;
    }
    if (!operator) {
      operator = this.ensureExtension(element, "spiffworkflow:ServiceTaskOperator", {
        id: name, parameterList: moddle.create("spiffworkflow:Parameters", { parameters: [] }) });
    }
    var op = this.ctx.operations.filter(function (o) { return o.name === name; })[0];
    var allowed = op ? op.required.concat(op.optional) : null;
    var kept = this.parameters(operator).filter(function (p) { return !allowed || allowed.indexOf(p.id) >= 0; });
    modeling.updateModdleProperties(element, operator, {
      id: name, parameterList: moddle.create("spiffworkflow:Parameters", { parameters: kept }) });
  };

  P.setParameter = function (element, name, value) {
    var modeling = this.service("modeling"), moddle = this.service("moddle");
    var operator = this.operator(element.businessObject);
    var params = this.parameters(operator).filter(function (p) { return p.id !== name; });
    value = value.trim();
    if (value) { params.push(moddle.create("spiffworkflow:Parameter", { id: name, type: "any", value: value })); }
    modeling.updateModdleProperties(element, operator, {
      parameterList: moddle.create("spiffworkflow:Parameters", { parameters: params }) });
  };

  // -- timers and messages ---------------------------------------------------------------------
  P.timerSection = function (element, timer) {
    var T = this.T, self = this;
    var kinds = ["timeDuration", "timeDate", "timeCycle"];
    var kind = kinds.filter(function (k) { return timer.get(k); })[0] || "timeDuration";
    var expr = timer.get(kind) ? timer.get(kind).get("body") || "" : "";
    function save() {
      var update = { timeDuration: undefined, timeDate: undefined, timeCycle: undefined };
      update[select.value] = self.service("moddle").create("bpmn:FormalExpression", { body: input.value.trim() });
      self.service("modeling").updateModdleProperties(element, timer, update);
    }
    var select = el("select", { "data-kefu": "timer-kind", onchange: save }, kinds.map(function (k) {
      return el("option", { value: k, selected: k === kind }, [T[k]]);
    }));
    var input = el("input", { value: expr, placeholder: "\"PT2H\"", "data-kefu": "timer-expression", onchange: save });
    return el("fieldset", {}, [el("legend", {}, [T.timer]), field(T.timerKind, select),
      field(T.expression, input, T.timerHint)]);
  };

  P.messageSection = function (element) {
    var T = this.T, self = this, bo = element.businessObject;
    var holder = eventDefinition(bo, "bpmn:MessageEventDefinition") || bo;
    var message = holder.get("messageRef");
    var input = el("input", { value: message ? message.get("name") || "" : "", "data-kefu": "message-name",
      onchange: function () { self.setMessageName(element, holder, input.value.trim()); } });
    return el("fieldset", {}, [el("legend", {}, [T.message]), field(T.messageName, input)]);
  };

  P.setMessageName = function (element, holder, name) {
    var modeling = this.service("modeling");
    var message = holder.get("messageRef");
    if (message) {
      modeling.updateModdleProperties(element, message, { name: name });
      return;
    }
    if (!name) { return; }
    var definitions = this.modeler.getDefinitions();
    var existing = definitions.get("rootElements").filter(function (r) { return is(r, "bpmn:Message") && r.name === name; })[0];
    if (!existing) {
      existing = this.service("moddle").create("bpmn:Message", { id: "Message_" + Math.random().toString(36).slice(2, 9), name: name });
      modeling.updateModdleProperties(element, definitions, { rootElements: definitions.get("rootElements").concat(existing) });
    }
    modeling.updateModdleProperties(element, holder, { messageRef: existing });
  };

  // -- helpers ---------------------------------------------------------------------------------
  function is(bo, type) { return !!bo && typeof bo.$instanceOf === "function" && bo.$instanceOf(type); }

  function extension(bo, type) {
    var ext = bo && bo.get && bo.get("extensionElements");
    return ext ? (ext.get("values") || []).filter(function (v) { return v.$instanceOf(type); })[0] || null : null;
  }

  function eventDefinition(bo, type) {
    return (bo.eventDefinitions || []).filter(function (d) { return is(d, type); })[0] || null;
  }

  window.KefuPanel = KefuPanel;
  window.KefuPanel.fmt = fmt;
})();
