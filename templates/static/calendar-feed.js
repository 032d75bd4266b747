// Progressive enhancement for the profile's calendar feed: a copy button (hidden without JavaScript).
"use strict";
(function () {
  var button = document.getElementById("calendar-feed-copy");
  var status = document.getElementById("calendar-feed-copied");
  if (!button || !status) return;
  var field = document.getElementById(button.getAttribute("data-copy-target"));
  if (!field) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var done = function () { status.textContent = status.getAttribute("data-done"); };
    var failed = function () {
      field.focus();
      field.select();
      status.textContent = status.getAttribute("data-failed");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(done, failed);
    } else {
      failed();
    }
  });
})();
