// The inline-policy editor of the admin console: Tab indents (Esc, then Tab, leaves the field, so the
// keyboard is never trapped) and a live hint says whether the text is valid JSON, with line and column.
// The server checks the policy for real and shows its problems next to the field.
"use strict";

(function () {
  var INDENT = "  ";

  function lineAndColumn(text, position) {
    var before = text.slice(0, position);
    var line = before.split("\n").length;
    var column = position - before.lastIndexOf("\n");
    return { line: line, column: column };
  }

  function syntaxHint(text) {
    if (!text.trim()) {
      return { ok: true, message: "" };
    }
    try {
      JSON.parse(text);
      return { ok: true, message: "JSON syntax looks right." };
    } catch (error) {
      var message = String(error.message || error);
      var where = /line (\d+) column (\d+)/.exec(message);
      var position = /position (\d+)/.exec(message);
      var place = "";
      if (where) {
        place = " at line " + where[1] + ", column " + where[2];
      } else if (position || /end of (JSON )?input/i.test(message)) {
        var found = lineAndColumn(text, position ? Number(position[1]) : text.length);
        place = " at line " + found.line + ", column " + found.column;
      }
      return { ok: false, message: "JSON syntax error" + place + ": " + message.replace(/\s*\(line \d+ column \d+\)/, "").replace(/\s*at position \d+/, "") };
    }
  }

  function attach(editor) {
    var hint = document.getElementById(editor.getAttribute("data-policy-editor"));
    var escaped = false;
    var timer = null;

    function update() {
      if (!hint) {
        return;
      }
      var result = syntaxHint(editor.value);
      hint.textContent = result.message;
      hint.classList.toggle("live-hint-bad", !result.ok);
    }

    editor.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        escaped = true;
        return;
      }
      if (event.key !== "Tab" || escaped || event.altKey || event.ctrlKey || event.metaKey) {
        escaped = false;
        return;
      }
      event.preventDefault();
      var start = editor.selectionStart;
      var end = editor.selectionEnd;
      var value = editor.value;
      var lineStart = value.lastIndexOf("\n", start - 1) + 1;
      if (event.shiftKey) {
        if (value.slice(lineStart, lineStart + INDENT.length) === INDENT) {
          editor.value = value.slice(0, lineStart) + value.slice(lineStart + INDENT.length);
          editor.selectionStart = editor.selectionEnd = Math.max(lineStart, start - INDENT.length);
        }
      } else {
        editor.value = value.slice(0, start) + INDENT + value.slice(end);
        editor.selectionStart = editor.selectionEnd = start + INDENT.length;
      }
      update();
    });

    editor.addEventListener("blur", function () {
      escaped = false;
    });

    editor.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(update, 300);
    });
  }

  var editors = document.querySelectorAll("textarea[data-policy-editor]");
  for (var i = 0; i < editors.length; i += 1) {
    attach(editors[i]);
  }
})();
