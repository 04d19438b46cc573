// Small glue between htmx and the page: the pop-up dialog, toasts and error answers.
// Behaviour lives on the server; this only opens, closes and announces.
(function () {
  "use strict";

  function showToast(message, category) {
    var box = document.getElementById("toasts");
    if (!box || !message) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (category || "info");
    el.textContent = message;
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 6000);
  }

  function modal() { return document.getElementById("modal"); }

  function closeModal() {
    var dlg = modal();
    if (dlg && dlg.open) dlg.close();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(function (el) {
      setTimeout(function () { el.remove(); }, 6000);
    });
    var dlg = modal();
    if (dlg) {
      dlg.addEventListener("close", function () { document.getElementById("modal-content").innerHTML = ""; });
      // A click on the backdrop (the dialog itself, outside its content) closes it.
      dlg.addEventListener("click", function (e) { if (e.target === dlg) closeModal(); });
    }
    document.addEventListener("click", function (e) {
      if (e.target.closest("[data-close-modal]")) { e.preventDefault(); closeModal(); }
    });
  });

  if (!window.htmx) return;

  // Swap 422 (form with errors) into the page; other errors become a toast.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];

  // A pop-up always fills #modal-content. A button inside a section that swaps itself (outerHTML)
  // would otherwise inherit that swap and replace the pop-up's container: no pop-up could open again.
  document.body.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "modal-content") e.detail.swapOverride = "innerHTML";
  });

  // One submission at a time: a double click on OK would otherwise send the form twice (htmx queues
  // the second request behind the first), e.g. two Add Devices requests. The buttons are disabled
  // while the request is in flight; a disabled default button also stops Enter from submitting.
  document.body.addEventListener("htmx:beforeRequest", function (e) {
    var form = e.detail.elt;
    if (form.tagName !== "FORM") return;
    form.querySelectorAll("button:not([disabled]):not([type=button]):not([type=reset])").forEach(function (b) {
      b.disabled = true;
      b.setAttribute("data-busy", "");
    });
  });
  document.body.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (form.tagName !== "FORM") return;
    form.querySelectorAll("button[data-busy]").forEach(function (b) {
      b.disabled = false;
      b.removeAttribute("data-busy");
    });
  });

  document.body.addEventListener("htmx:afterSwap", function (e) {
    var dlg = modal();
    if (!dlg) return;
    if (e.detail.target && e.detail.target.id === "modal-content") {
      if (!dlg.open) dlg.showModal();
      // Focus the first field of the body, not the header's Close button (which comes first in the DOM);
      // an [autofocus] element wins wherever it is.
      var body = dlg.querySelector(".dialog-body") || dlg;
      var first = body.querySelector("[autofocus]") ||
        body.querySelector("input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled]), button:not([disabled])");
      if (first) first.focus();
    } else if (dlg.open && !dlg.contains(document.activeElement)) {
      // A pop-up form came back with errors (422): the focused button was replaced, so focus fell to
      // <body>; put the keyboard on the first field to fix instead.
      var invalid = dlg.querySelector("[aria-invalid=true]");
      if (invalid) invalid.focus();
    }
  });
  document.body.addEventListener("closeModal", closeModal);
  document.body.addEventListener("toast", function (e) { showToast(e.detail.message, e.detail.category); });
  document.body.addEventListener("htmx:responseError", function (e) {
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(e.detail.xhr.responseText, "text/html");
      var p = doc.querySelector(".error-page p");
      text = p ? p.textContent : "";
    } catch (err) { /* fall through to the generic message */ }
    showToast(text || ("The request failed (" + e.detail.xhr.status + ")."), "error");
  });
  document.body.addEventListener("htmx:sendError", function () {
    showToast("The portal cannot be reached. Check your connection and try again.", "error");
  });
})();
