// The task page's reply templates: insert the chosen canned text into the step's reply field.
(function () {
  "use strict";
  var box = document.querySelector("[data-reply-templates]");
  if (!box) { return; }
  // The reply field the page names (processes/reply_templates.REPLY_FIELDS: final_reply,
  // callback_note …), else a textarea named *reply*.
  var form = document.querySelector("form.task-form");
  var named = box.dataset.replyField ? form && form.querySelector('[name="' + box.dataset.replyField + '"]') : null;
  var field = named || (form && form.querySelector("textarea[name$=reply]"));
  var button = box.querySelector("[data-insert-reply]");
  if (!field) {
    button.disabled = true;
    box.querySelector("[data-no-reply-field]").hidden = false;
    return;
  }
  button.addEventListener("click", function () {
    var option = box.querySelector("select").selectedOptions[0];
    if (!option) { return; }
    var text = option.dataset.body || "";
    // Appended, never replacing what the handler already typed.
    field.value = field.value ? field.value + "\n" + text : text;
    field.focus();
    field.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
