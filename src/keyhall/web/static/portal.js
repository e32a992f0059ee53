// Keyhall portal: copy buttons and filter-as-you-type. Progressive: every page works without it.
(function () {
  "use strict";

  function announce(message) {
    var status = document.querySelector("[data-copy-status]");
    if (status) {
      status.textContent = "";
      window.setTimeout(function () { status.textContent = message; }, 50);
    }
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copy(button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) { return; }
    var text = target.textContent;
    var label = button.textContent;
    function done(message) {
      button.textContent = message;
      announce(message);
      window.setTimeout(function () { button.textContent = label; }, 2000);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { done("Copied"); },
        function () { selectText(target); done("Press Ctrl+C to copy"); }
      );
    } else {
      selectText(target);
      done("Press Ctrl+C to copy");
    }
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copy(button); });
  });

  // The server filters with ?q= too; this only saves the round trip while typing.
  var filter = document.querySelector("[data-filter-target]");
  if (filter) {
    var list = document.querySelector(filter.getAttribute("data-filter-target"));
    var count = document.querySelector("[data-filter-count]");
    var empty = document.querySelector("[data-filter-empty]");
    var apply = function () {
      if (!list) { return; }
      var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      var cards = list.querySelectorAll("[data-search]");
      var shown = 0;
      cards.forEach(function (card) {
        var text = card.getAttribute("data-search");
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        card.hidden = !match;
        if (match) { shown += 1; }
      });
      if (count) {
        count.textContent = words.length
          ? shown + " of " + cards.length + " accounts match."
          : cards.length + (cards.length === 1 ? " account." : " accounts.");
      }
      if (empty) { empty.hidden = shown !== 0; }
    };
    filter.addEventListener("input", apply);
  }
})();
