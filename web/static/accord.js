// Progressive enhancement only: every page works without this file.
// A form submits once: after the first submit its buttons are disabled (the server also
// applies a form once, whatever arrives: web/forms.py). The back/forward cache may restore
// a page with disabled buttons, so they are enabled again when a page is shown.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.submitted === "1") { event.preventDefault(); return; }
  form.dataset.submitted = "1";
  form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (b) {
    window.setTimeout(function () { b.disabled = true; }, 0);  // after the browser has read the clicked button's value
  });
});
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-submitted]").forEach(function (form) {
    delete form.dataset.submitted;
    form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
  });
});
// An error summary takes the focus so a screen reader announces it.
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }
});
