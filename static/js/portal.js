// Small glue between htmx and the page: the pop-up dialog, toasts and error answers.
// Behaviour lives on the server; this only opens, closes and announces.
(function () {
  "use strict";

  function showToast(message, category, key) {
    var box = document.getElementById("toasts");
    if (!box || !message) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (category || "info");
    el.textContent = message;
    if (key) {  // the same subject's earlier toast ("Checking…") gives way to this one (its answer)
      Array.prototype.forEach.call(box.querySelectorAll(".toast[data-key]"), function (old) {
        if (old.getAttribute("data-key") === key) old.remove();
      });
      el.setAttribute("data-key", key);
    }
    box.appendChild(el);
    dismissLater(el);
  }

  // A toast goes by itself, after long enough to read it: six seconds, up to ten for a long message (Apple's answer
  // with what to do about it), a second more for each twenty characters past the first eighty. Not longer: toasts
  // sit over the corner of the page and would hide what is under them.
  function dismissLater(el) {
    var extra = Math.max(0, el.textContent.trim().length - 80) * 50;
    setTimeout(function () { el.remove(); }, Math.min(10000, 6000 + extra));
  }

  function modal() { return document.getElementById("modal"); }

  // Keeping the keyboard's place. A swap (a polled row, a sorted table, a pager, a list refreshed after a pop-up)
  // that removes the focused element drops focus to <body>: back to the top of the page for a keyboard or screen
  // reader user, or out of the pop-up. So the focused element is described before it goes (the ids around it, its
  // tag and words, its position among the focusable elements there) and its counterpart is focused afterwards.
  var FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]";

  function focusables(scope) {
    return Array.prototype.filter.call(scope.querySelectorAll(FOCUSABLE), function (el) {
      // checkVisibility(): the content of a closed <details> still has boxes, but cannot take focus; nor can a control
      // made invisible (visibility: hidden), under [inert], or in a disabled <fieldset> (:disabled, not .disabled).
      return !el.matches(":disabled") && el.tabIndex >= 0 && !el.closest("[inert]") && el.getClientRects().length > 0 &&
        (!el.checkVisibility || el.checkVisibility({ visibilityProperty: true }));
    });
  }

  // The words only: "Serial number ▲" and "Serial number ▼", "Next page ›" and "Next page" are the same control.
  function words(el) {
    return (el.getAttribute("aria-label") || el.textContent || "").replace(/[^\p{L}\p{N}]+/gu, " ").trim();
  }

  // The containers around `el` that a swap may renew under the same name: those with an id, and navigation
  // (pagers, tabs) by its label within the nearest of those.
  function describeFocus(el) {
    var scopes = [], navs = [];
    for (var node = el.parentElement; node && node !== document.body; node = node.parentElement) {
      if (node.tagName === "NAV" && node.getAttribute("aria-label")) navs.push(node);
      if (!node.id) continue;
      var id = "#" + CSS.escape(node.id);
      navs.forEach(function (nav) {
        scopes.push(place(id + ' nav[aria-label="' + nav.getAttribute("aria-label").replace(/"/g, '\\"') + '"]', nav, el));
      });
      navs = [];
      scopes.push(place(id, node, el));
    }
    return { elt: el, scopes: scopes, tag: el.tagName, words: words(el) };
  }

  // Where `el` stands among the focusable elements of `scope`: its index, and whether it was the last one (a pager's
  // "Next page": on the last page, the control at its end, "Previous page", takes its place, not "First page").
  function place(selector, scope, el) {
    var all = focusables(scope), index = all.indexOf(el);
    return { selector: selector, index: index, last: index >= 0 && index === all.length - 1 };
  }

  function focusLost() {
    return !document.activeElement || document.activeElement === document.body;
  }

  // Focus the counterpart of a described element that is gone: the same control in the nearest container that is
  // still there (the same row, table or pager), else whatever now stands at its place there (the next control when
  // it is disabled now, the next row's when its row was deleted), else at its place in a larger container.
  // Inside the pop-up, whose whole content may have changed (a form became its result), only the same control:
  // false otherwise, and the caller focuses the pop-up's first field.
  // After a swap (was.swapped: the element swapped, or its id), only inside what was swapped while it is still there:
  // a polled card whose only control is disabled sent the keyboard to a button of the next card, which Enter then
  // pressed. With nothing to take it there, the swapped element itself keeps it.
  function restoreFocus(was) {
    if (!was || !focusLost()) return true;
    if (was.elt && was.elt.isConnected) was.elt.focus();  // no element when kept across a reload (keepFocusAcross)
    if (!focusLost()) return true;
    var within = swappedNow(was);
    for (var i = 0; i < was.scopes.length; i++) {
      var scope = document.querySelector(was.scopes[i].selector);
      if (!scope || (within && !within.contains(scope))) continue;
      var found = focusables(scope);
      var same = i === 0 && found.filter(function (el) { return el.tagName === was.tag && words(el) === was.words; })[0];
      if (!same && scope.id === "modal-content") return false;  // the pop-up's whole content changed
      var at = was.scopes[i].last ? found.length - 1 : Math.min(Math.max(was.scopes[i].index, 0), found.length - 1);
      var target = same || found[at];
      if (target) {
        target.focus();
        return true;
      }
    }
    if (!within) return false;
    if (!within.hasAttribute("tabindex")) within.setAttribute("tabindex", "-1");
    within.focus();
    return true;
  }

  // The element a swap put in place of the one that held focus: the same one (an inner swap), or its successor of
  // the same id (an outer swap); null when it is gone (a deleted row), and focus may go to its neighbours.
  function swappedNow(was) {
    if (!was.swapped) return null;
    if (was.swapped.isConnected) return was.swapped;
    return was.swapped.id ? document.getElementById(was.swapped.id) : null;
  }

  // A field to fix: the keyboard on it, and its message in view. Focus only scrolls the field itself into view, and in
  // a short window (a phone) the message below it stayed under the pop-up's buttons, which stick to the bottom.
  function focusInvalid(el) {
    el.focus();
    var ids = (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) { return /-error/.test(id); });
    var message = ids.length ? document.getElementById(ids[ids.length - 1]) : null;
    if (message && message.scrollIntoView) message.scrollIntoView({ block: "nearest" });
  }

  // The pop-up's first field, not the header's Close button (which comes first in the DOM); an [autofocus] element
  // wins wherever it is. Only a control that can take focus: not one inside a closed <details> (or otherwise not
  // rendered), whose focus() does nothing and leaves the keyboard on the ✕.
  function focusFirst(dlg) {
    var body = dlg.querySelector(".dialog-body") || dlg;
    var first = body.querySelector("[autofocus]") || focusables(body).filter(function (el) {
      return el.matches("input, select, textarea, button, a[href]");
    })[0];
    if (first) first.focus();
  }

  // The keyboard stays in an open pop-up: Tab from its last control goes to its first (the ✕), Shift+Tab from the first
  // to the last. A modal <dialog> alone lets Tab leave the page for the browser's address bar at either end. The
  // controls are counted at each key press, so that what htmx swapped in, an error message or a field revealed since
  // the pop-up opened counts, and a disabled, hidden or inert control does not (focusables() skips what the browser
  // skips). Between the ends, the browser moves as usual.
  function keepTabInside(e) {
    if (e.key !== "Tab" || e.altKey || e.ctrlKey || e.metaKey) return;
    var active = document.activeElement, stops = focusables(e.currentTarget);
    // "Beyond" in document order, not by index: the focus may be on the pop-up itself (a click on its text), on none
    // of its controls; Shift+Tab from there would leave too.
    var beyond = e.shiftKey ? Node.DOCUMENT_POSITION_PRECEDING : Node.DOCUMENT_POSITION_FOLLOWING;
    if (stops.some(function (el) { return active.compareDocumentPosition(el) & beyond; })) return;
    e.preventDefault();
    var other = e.shiftKey ? stops[stops.length - 1] : stops[0];
    if (other) other.focus();
  }

  var opener = null;  // describeFocus() of what had focus when the pop-up opened

  function closeModal() {
    var dlg = modal();
    if (dlg && dlg.open) dlg.close();
  }

  // Nothing an admin typed is lost without asking: Escape, Cancel, the ✕ or a click beside a pop-up in which
  // something was typed or ticked asks first. (A search box only filters: it does not count.) Closing after a
  // successful save (the server's closeModal) never asks.
  var edited = false;

  function noteEdit(e) {
    if (e.isTrusted && e.target.type !== "search") edited = true;
  }

  function closeUnlessKept() {
    if (!edited || window.confirm("Close without saving? What you entered in this pop-up will be lost.")) {
      closeModal();
      return true;
    }
    return false;
  }

  // Add Server opened from the key pair just generated has that key pair chosen for the admin (a select marked
  // data-suggested). A key file chosen or a key pasted (the fields its data-yields-to names) is the admin's own
  // choice: the suggestion gives way to it, instead of both being sent and refused ("Choose one private key"). A
  // choice the admin makes in the list itself stands, and then both are refused as before.
  function yieldSuggestion(e) {
    var form = e.target.form;
    if (!e.isTrusted || !form) return;
    Array.prototype.forEach.call(form.querySelectorAll("select[data-suggested]"), function (select) {
      if (e.target !== select && !(e.target.matches(select.getAttribute("data-yields-to")) && e.target.value.trim())) {
        return;
      }
      if (e.target !== select && select.value === select.getAttribute("data-suggested")) {
        select.value = select.options[0].value;
      }
      select.removeAttribute("data-suggested");
    });
  }
  document.addEventListener("input", yieldSuggestion);
  document.addEventListener("change", yieldSuggestion);

  // Back or Forward may show a page from the back-forward cache as it was left, a filter changed but not applied
  // included, though its URL says otherwise: plain filter forms (no htmx) go back to what the page was rendered
  // with, which is what its URL says. (Signed-in pages are sent no-store, so this is a second line of defence.)
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;
    document.querySelectorAll("form[role=search][method=get]:not([hx-get])").forEach(function (form) { form.reset(); });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(dismissLater);
    // A page form sent back with errors (Configuration › Apple, a form opened as a page): the keyboard starts on
    // the first field to fix, as in the pop-ups, not at the top of the page.
    var invalid = document.querySelector("main [aria-invalid=true]");
    if (invalid && focusLost()) invalid.focus();
    var dlg = modal();
    if (dlg) {
      dlg.addEventListener("close", function () {
        edited = false;
        document.getElementById("modal-content").innerHTML = "";
        // The browser puts focus back on the button that opened the pop-up, unless a swap replaced it meanwhile.
        restoreFocus(opener);
        opener = null;
      });
      // A click on the backdrop (the dialog itself, outside its content) closes it.
      dlg.addEventListener("click", function (e) { if (e.target === dlg) closeUnlessKept(); });
      dlg.addEventListener("keydown", keepTabInside);
      dlg.addEventListener("input", noteEdit);
      dlg.addEventListener("change", noteEdit);
      dlg.addEventListener("cancel", function (e) {  // Escape
        // A file chooser closed without a choice fires "cancel" on its input, which bubbles here: not an Escape.
        if (e.target !== dlg) return;
        e.preventDefault();
        closeUnlessKept();
      });
    }
    document.addEventListener("click", function (e) {
      if (e.target.closest("[data-close-modal]")) { e.preventDefault(); closeUnlessKept(); }
    });
    // Enter on a checkbox or a radio button would send its form (Chromium's implicit submission): in Select the
    // Managed Devices that was OK, assigning the ticked devices at Apple. Space ticks; only the form's button sends.
    document.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && e.target.matches && e.target.matches("input[type=checkbox], input[type=radio]")) {
        e.preventDefault();
      }
    });
    // A button waiting for its work (Check now while Apple is asked) is aria-disabled rather than disabled, so that it
    // keeps the keyboard while its card is polled: a click or Enter on it does nothing, as on a disabled one.
    document.addEventListener("click", function (e) {
      if (e.target.closest && e.target.closest("button[aria-disabled=true]")) e.preventDefault();
    }, true);
    // Links drawn as buttons (Add Server, Delete, Renew a server…) answer Space like the buttons they look like,
    // instead of scrolling the page.
    document.addEventListener("keydown", function (e) {
      if (e.key === " " && !e.repeat && e.target.matches && e.target.matches("a.button[href]")) {
        e.preventDefault();
        e.target.click();
      }
    });
  });

  if (!window.htmx) return;

  // Polled sections (a row while it synchronizes, a profile while it is configured, a request's progress) and
  // refreshed lists change under the screen reader's cursor: what their [data-announce] elements say (the status
  // badge, else the text) is read out politely when it changes, prefixed with the attribute's words. Not a live
  // region around them: it would read the whole section again every 2 s, and not at all once it is replaced.
  function statusText(el) {
    return (el.querySelector(".badge") || el).textContent.replace(/\s+/g, " ").trim();
  }

  function statuses(root) {
    var seen = {};
    var found = Array.prototype.slice.call(root.querySelectorAll("[data-announce]"));
    if (root.matches("[data-announce]")) found.unshift(root);
    found.forEach(function (el) { seen[el.getAttribute("data-announce")] = statusText(el); });
    return seen;
  }

  function announceChanges(root) {
    var before = statusBeforeSwap;
    if (!before || !root.isConnected) return;
    var now = statuses(root);
    Object.keys(now).forEach(function (key) {
      if (before[key] === now[key]) return;
      before[key] = now[key];  // said once, even when htmx:afterSwap comes again for this swap
      say((key ? key + " " : "") + now[key]);
    });
  }

  function say(text) {
    var box = document.getElementById("announcer");
    if (!box) return;
    var line = document.createElement("p");
    line.textContent = text;
    box.appendChild(line);
    setTimeout(function () { line.remove(); }, 6000);
  }

  // "N devices · 2 ticked" (Select the Managed Devices, a profile's devices) follows each tick, not only the next
  // page or filter the server draws. The count is the server's rule: the devices sent, i.e. those ticked here and
  // on other pages (hidden inputs), or with Select all [data-ticks-all] every device listed [data-ticks-total] plus
  // those ticked that the list leaves out [data-ticks-outside], but the rows unticked meanwhile (hidden inputs
  // named "except", said as "all but N"). The line's text changes in place, so a screen
  // reader hears it through the announcer (once the ticking pauses, not at every box); its [data-announce] copy
  // then already says the same, so the next swap does not say it again.
  var tickTimer = null;

  function selectsAll(list) {
    var all = list.querySelector("input[data-ticks-all]");
    return !!all && all.checked;
  }

  function exceptionsOf(list) { return list.querySelectorAll("input[type=hidden][name=except]"); }

  function tickedCount(list) {
    if (selectsAll(list)) {
      return Number(list.getAttribute("data-ticks-total")) + Number(list.getAttribute("data-ticks-outside") || 0) -
        exceptionsOf(list).length;
    }
    return list.querySelectorAll("input[name=device][type=hidden], input[name=device][type=checkbox]:checked").length;
  }

  function followTicks() {
    var changed = [];
    document.querySelectorAll("[data-ticks-total]").forEach(function (list) {
      var span = list.querySelector("[data-ticked]"), count = tickedCount(list);
      var but = selectsAll(list) ? exceptionsOf(list).length : 0;
      var text = count ? " · " + count.toLocaleString("en-US") + " ticked" : "";
      // The same words as the server's (assignments/_pick_list.html, _profile_devices.html).
      if (count && but && span) text += " (" + span.getAttribute("data-all-but") + " " + but.toLocaleString("en-US") + ")";
      var form = list.closest("form");
      if (count && form) form.querySelectorAll("[data-gone-when-ticked]").forEach(function (stale) { stale.remove(); });
      if (!span || span.textContent === text) return;
      span.textContent = text;
      changed.push(span.parentElement);
    });
    if (!changed.length) return;
    clearTimeout(tickTimer);
    tickTimer = setTimeout(function () {
      changed.forEach(function (line) { if (line.isConnected) say(statusText(line)); });
    }, 500);
  }

  // Swap 422 (form with errors) into the page; other errors become a toast.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];

  // A pop-up always fills #modal-content. A button inside a section that swaps itself (outerHTML)
  // would otherwise inherit that swap and replace the pop-up's container: no pop-up could open again.
  // And what has focus in the content about to be replaced is noted, for htmx:afterSwap.
  var focusBeforeSwap = null;
  // A control that goes with the content it replaces names where the keyboard goes instead (data-focus-after-swap):
  // Clear search, gone with the search it clears, hands it to the emptied search box.
  var focusAfterSwap = null;
  var statusBeforeSwap = null;  // what each [data-announce] said before the swap, by its data-announce
  document.body.addEventListener("htmx:beforeSwap", function (e) {
    statusBeforeSwap = e.detail.target && e.detail.target.id !== "modal-content" ? statuses(e.detail.target) : null;
    if (e.detail.target && e.detail.target.id === "modal-content") e.detail.swapOverride = "innerHTML";
    var target = e.detail.target;
    focusBeforeSwap = focusAfterSwap = null;
    if (!target) return;
    if (!focusLost()) {
      if (target.contains(document.activeElement)) focusBeforeSwap = describeFocus(document.activeElement);
      if (target.contains(document.activeElement)) focusAfterSwap = document.activeElement.getAttribute("data-focus-after-swap");
    } else if (busyFocus && target.contains(busyFocus.elt)) {
      focusBeforeSwap = Object.assign({}, busyFocus);  // the button pressed, disabled meanwhile (which drops focus)
    }
    if (focusBeforeSwap && !target.closest("dialog")) focusBeforeSwap.swapped = target;  // the pop-up has its own rules
  });

  // One submission at a time: a double click on OK would otherwise send the form twice (htmx queues
  // the second request behind the first), e.g. two Add Devices requests. The buttons are disabled
  // while the request is in flight; a disabled default button also stops Enter from submitting.
  var busyFocus = null;  // describeFocus() of the button disabled while it had focus
  document.body.addEventListener("htmx:beforeRequest", function (e) {
    var form = e.detail.elt;
    if (form.tagName !== "FORM") return;
    var focused = document.activeElement;
    if (focused && focused.tagName === "BUTTON" && form.contains(focused)) busyFocus = describeFocus(focused);
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
    // Nothing replaced the form (an error shown as a toast, say): the keyboard goes back to its button.
    if (busyFocus && form.contains(busyFocus.elt) && focusLost()) busyFocus.elt.focus();
    busyFocus = null;
  });

  document.body.addEventListener("htmx:afterSwap", function (e) {
    announceChanges(e.target);
    var dlg = modal();
    if (!dlg) return;
    var was = focusBeforeSwap;
    focusBeforeSwap = null;
    if (dlg.open && dlg.contains(e.target) && e.detail.requestConfig && e.detail.requestConfig.verb !== "get" &&
        e.detail.xhr && e.detail.xhr.status < 300) {
      // A form sent and answered with its result in the pop-up (Generate key pair): what was typed is saved, so
      // closing no longer asks. (A form sent back with its errors is a 422 and keeps what was typed: it still asks.)
      edited = false;
    }
    if (e.detail.target && e.detail.target.id === "modal-content") {
      if (e.detail.requestConfig && e.detail.requestConfig.verb === "get") {
        popupUrl = e.detail.pathInfo.finalRequestPath || e.detail.pathInfo.requestPath;
      }
      if (!dlg.open) {
        opener = focusLost() ? null : describeFocus(document.activeElement);
        dlg.showModal();
      }
      edited = false;  // another pop-up, or another one opened in its place (Generate key pair → Add Server)
      focusFirst(dlg);
    } else if (dlg.open && e.detail.xhr && e.detail.xhr.status === 422 && dlg.contains(document.activeElement) &&
               document.activeElement.getAttribute("aria-invalid") !== "true" && dlg.querySelector("[aria-invalid=true]")) {
      // Enter in a field that was fine (htmx keeps the focus on its new copy) while another field has the error:
      // the keyboard goes to that one, or the admin types on without hearing what to fix.
      focusInvalid(dlg.querySelector("[aria-invalid=true]"));
    } else if (dlg.open && !dlg.contains(document.activeElement)) {
      // A pop-up form came back with errors (422): the focused button was replaced, so focus fell to
      // <body>; put the keyboard on the first field to fix instead. Other new content (a page of devices, a key pair
      // generated): the counterpart of what had focus, or the first field.
      var invalid = dlg.querySelector("[aria-invalid=true]");
      if (invalid) focusInvalid(invalid);
      else if (!restoreFocus(was) || !dlg.contains(document.activeElement)) focusFirst(dlg);
    } else if (focusAfterSwap && document.getElementById(focusAfterSwap)) {
      document.getElementById(focusAfterSwap).focus();
    } else {
      restoreFocus(was);
    }
    focusAfterSwap = null;
  });
  // "Select all N matching the filter" names the filter the list shows. Once the filter is edited (the list
  // follows only after a pause), the tick would stand for the old filter: OK pressed meanwhile must not send
  // devices the admin no longer sees. It is unticked and disabled until the refreshed list brings it back, and
  // the filter the list carries for OK takes the edit, so that an answer to that OK shows what was typed.
  function staleSelectAll(e) {
    var form = e.target.closest ? e.target.closest("form[id]") : null;
    if (!form) return;
    // A text field's every edit came as an input event already. Its change event comes when the keyboard (or a
    // click) leaves it, long after the list followed what was typed: Select all must then stay usable.
    if (e.type === "change" && (e.target.tagName === "TEXTAREA" ||
        (e.target.tagName === "INPUT" && !/^(checkbox|radio|file)$/.test(e.target.type)))) return;
    unticksByAll(form);
    document.querySelectorAll('input[data-select-all-of="' + form.id + '"]').forEach(function (box) {
      // Turned off here, not by the admin: the refreshed list says so (selectAllDropped), or an admin who ticked
      // Select all for the iPads, then filtered to Macs, would send the Macs alone without a word.
      if (box.checked) form.setAttribute("data-select-all-dropped", "");
      box.checked = false;
      box.disabled = true;
    });
    document.querySelectorAll('[data-carries-filter-of="' + form.id + '"]').forEach(function (carrier) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (!field.name || field.tagName === "BUTTON") return;
        var hidden = carrier.querySelector(':scope > input[type=hidden][name="' + field.name + '"]');
        if (!hidden) {
          hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = field.name;
          carrier.prepend(hidden);
        }
        hidden.value = field.value;
      });
    });
  }
  // Select all ticks the rows shown (marked data-by-all: OK sends every matching device anyway, and a page or a
  // search does not carry them as ticked one by one). Unticking a row then means "all but this one" (597 matching,
  // one unticked: 596 are sent), not "the rows shown but this one": Select all stays ticked and the row is recorded
  // as excepted, a hidden input named "except" in the list, which OK and the pager send like the devices ticked on
  // other pages, and the server draws that row unticked on any page. Ticking it again drops the exception. Select all
  // unticked (by the admin, or by an edit of the filter) unticks the rows it ticked and forgets the exceptions:
  // they stand for nothing once the devices are ticked one by one.
  function rowsOf(list) { return list.querySelectorAll("input[name=device][type=checkbox]"); }
  function exception(list, id) {
    return Array.prototype.find.call(exceptionsOf(list), function (input) { return input.value === id; });
  }
  function forgetExceptions(list) { exceptionsOf(list).forEach(function (input) { input.remove(); }); }
  function selectAllFollows(e) {
    var box = e.target, list = box.closest ? box.closest("[data-ticks-total]") : null;
    if (!list || box.type !== "checkbox") return;
    if (box.hasAttribute("data-ticks-all")) {
      forgetExceptions(list);
      rowsOf(list).forEach(function (row) {
        if (box.checked && !row.checked) { row.checked = true; row.setAttribute("data-by-all", ""); }
        else if (!box.checked && row.hasAttribute("data-by-all")) { row.checked = false; row.removeAttribute("data-by-all"); }
      });
    } else if (box.name === "device" && selectsAll(list)) {
      var excepted = exception(list, box.value);
      if (!box.checked && !excepted) {
        excepted = document.createElement("input");
        excepted.type = "hidden";
        excepted.name = "except";
        excepted.value = box.value;
        list.prepend(excepted);
      } else if (box.checked) {
        if (excepted) excepted.remove();
        box.setAttribute("data-by-all", "");  // Select all's again: unticking Select all unticks it
      }
    }
  }
  function unticksByAll(form) {
    document.querySelectorAll('input[data-select-all-of="' + form.id + '"]').forEach(function (box) {
      var list = box.closest("[data-ticks-total]");
      if (!list) return;
      forgetExceptions(list);
      rowsOf(list).forEach(function (row) {
        if (row.hasAttribute("data-by-all")) { row.checked = false; row.removeAttribute("data-by-all"); }
      });
    });
  }
  document.addEventListener("change", selectAllFollows);
  document.addEventListener("input", staleSelectAll);
  document.addEventListener("change", staleSelectAll);
  // After staleSelectAll, which may untick Select all.
  document.addEventListener("input", followTicks);
  document.addEventListener("change", followTicks);
  // A filter edit that turned Select all off asks the refreshed list to say so, until a list answering it is shown
  // (a request replaced by the next edit does not count).
  document.body.addEventListener("htmx:configRequest", function (e) {
    var form = e.detail.elt;
    if (form.hasAttribute && form.hasAttribute("data-select-all-dropped")) e.detail.parameters.select_all_dropped = "1";
  });
  document.body.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (e.detail.successful && form.hasAttribute && form.hasAttribute("data-select-all-dropped")) {
      form.removeAttribute("data-select-all-dropped");
    }
  });
  // A search or filter form sends only the fields that say something: the URL it pushes (a bookmark, a link to
  // share) reads "?family=Mac", not every empty field. The pages treat a missing field as an empty one.
  // Its search box too, which sends the form while typing (hx-include).
  document.body.addEventListener("htmx:configRequest", function (e) {
    var form = e.detail.elt;
    if (e.detail.verb !== "get" || !form.closest || !form.closest("form[role=search]")) return;
    var data = e.detail.formData, empty = [];
    data.forEach(function (value, name) { if (value === "" && empty.indexOf(name) < 0) empty.push(name); });
    empty.forEach(function (name) {
      var kept = data.getAll(name).filter(function (value) { return value !== ""; });
      data.delete(name);
      kept.forEach(function (value) { data.append(name, value); });
    });
  });
  // Background polls do not keep the session alive (portal/auth/sessions.py): a tab left open on a polling page
  // would otherwise never reach the idle limit. Polls are marked here, once for every polling element: htmx sends a
  // poll ("every 2s") without a triggering event, and the events a poll's answer sends (HX-Trigger: batchProgress
  // refreshes the device list under a request's progress) are dispatched by htmx on the polling element. The header
  // only ever keeps a request from counting as activity, so a request wrongly left unmarked still works as before.
  var POLL_HEADER = "X-Background-Poll";
  var sessionEnded = false;  // a poll found the session ended: the page polls no more

  function polls(el) {
    return !!(el && el.getAttribute) && /(^|,)\s*every\s/.test(el.getAttribute("hx-trigger") || "");
  }

  function isPoll(detail) {
    var cause = detail.triggeringEvent;
    if (!cause) return polls(detail.elt);
    // Not trusted: sent by a script (htmx answering a request), not by the admin's click, key or typing.
    return !cause.isTrusted && !!cause.detail && polls(cause.detail.elt);
  }

  // A form sent from the pop-up says so: sent back with errors, its Cancel closes the pop-up; the same form on a page
  // of its own keeps a link back (templates/_macros/forms.html, cancel()).
  document.body.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.elt.closest && e.detail.elt.closest("dialog[open]")) e.detail.headers["X-Pop-Up"] = "true";
  });
  document.body.addEventListener("htmx:configRequest", function (e) {
    if (!isPoll(e.detail)) return;
    if (sessionEnded) e.preventDefault();
    else e.detail.headers[POLL_HEADER] = "true";
  });

  // A poll that finds the session ended does not follow the server's HX-Redirect to the sign-in page: that would take
  // away what the admin is typing in an open pop-up (files and passwords are never kept). The page stays, polls stop,
  // and the page says so with a link to sign in; an open pop-up says what sending it will do. What the admin sends
  // next goes to the sign-in page as before, and a pop-up's form is kept for after it (below).
  document.body.addEventListener("htmx:beforeOnLoad", function (e) {
    var xhr = e.detail.xhr, config = e.detail.requestConfig;
    var signIn = xhr && xhr.status === 401 && xhr.getResponseHeader("HX-Redirect");
    if (!signIn || !config || !config.headers[POLL_HEADER]) return;
    e.preventDefault();
    if (!sessionEnded) showSessionEnded(signIn);
    sessionEnded = true;
  });

  function alertBox(text, kind) {
    var box = document.createElement("div");
    box.className = "alert alert-warning " + (kind || "session-ended");
    box.setAttribute("role", "alert");
    var line = document.createElement("p");
    line.textContent = text;
    box.append(line);
    return box;
  }

  function showSessionEnded(signIn) {
    var banner = alertBox("Your session has ended (signed out, or unused for too long): this page is no longer " +
      "updated. ");
    var link = document.createElement("a");
    link.href = signIn;
    link.textContent = "Sign in again";
    banner.firstChild.append(link, ".");
    var main = document.getElementById("main");
    if (main) main.prepend(banner);
    var dlg = modal(), body = dlg && dlg.open && dlg.querySelector(".dialog-body");
    if (body && body.querySelector("form")) {
      body.prepend(alertBox("Your session has ended: sending this takes you to the sign-in page first. What you " +
        "entered comes back once you have signed in, except files, passwords, private keys and typed confirmations."));
    }
  }

  // Signed in again meanwhile, in another tab: when the admin comes back to this one, it asks whether the session is
  // back. For the same admin the page goes on: the banners go, the polls' timers (never stopped, only refused above)
  // send again, and forms take the new session's CSRF token (signing in starts a new session, whose token differs).
  // For another admin the page asks to be reloaded: what it shows, and what an open pop-up would send, were the
  // other admin's. Signed out still, nothing changes.
  var checkingSession = false;

  function checkSessionBack() {
    var url = document.body.getAttribute("data-session-url");
    if (!sessionEnded || checkingSession || document.hidden || !url || !window.fetch) return;
    checkingSession = true;
    var headers = { "HX-Request": "true", "Accept": "application/json" };
    headers[POLL_HEADER] = "true";  // asking is no activity of the admin's
    fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (info) { if (info && sessionEnded) sessionBack(info); })
      .catch(function () { /* not reachable now: asked again next time the tab is back */ })
      .then(function () { checkingSession = false; });
  }

  function sessionBack(info) {
    var boxes = document.querySelectorAll(".session-ended");
    if (String(info.admin) !== document.body.getAttribute("data-admin")) {
      boxes.forEach(function (box) { box.remove(); });
      var banner = alertBox("Another admin is signed in now (in another tab): this page is still the previous " +
        "admin's and is no longer updated. ");
      var link = document.createElement("a");
      link.href = location.href;
      link.textContent = "Reload the page";
      banner.firstChild.append(link, " to go on as the admin signed in.");
      var main = document.getElementById("main");
      if (main) main.prepend(banner);
      return;
    }
    sessionEnded = false;
    var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    headers["X-CSRFToken"] = info.csrf_token;
    document.body.setAttribute("hx-headers", JSON.stringify(headers));
    document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) { input.value = info.csrf_token; });
    boxes.forEach(function (box) { box.remove(); });
    showToast("You are signed in again: this page is updated again.", "info");
  }

  document.addEventListener("visibilitychange", checkSessionBack);
  window.addEventListener("focus", checkSessionBack);

  // Nothing typed is lost when the session ends: a pop-up's form sent after it ended goes to the sign-in page
  // (security.sign_in_first answers 401 + HX-Redirect). What was typed in the form is kept in this tab (sessionStorage,
  // gone with the tab; never a password, a file, a hidden field such as the CSRF token, a field marked data-secret
  // such as a pasted private key, or one marked data-confirmation: a typed RELEASE or server name is typed again, so
  // that one click after signing in never releases or deletes) and, once the same admin signed in again and is back
  // on the page, the pop-up opens again with it, to be checked and sent.
  var DRAFT_KEY = "portal.unsentForm", DRAFT_MAX_AGE_MS = 24 * 3600 * 1000;
  var popupUrl = null;  // where the open pop-up was loaded from

  function pageKey() { return location.pathname + location.search; }

  // Which form a draft was typed in: its verb and address. A pop-up's filter form may send to the same address as
  // its OK form (Select the Managed Devices), but with GET: the draft goes back into the form that was sent.
  function formKey(form) {
    if (form.getAttribute("hx-post")) return "post " + form.getAttribute("hx-post");
    if (form.getAttribute("hx-get")) return "get " + form.getAttribute("hx-get");
    return (form.getAttribute("method") || "get").toLowerCase() + " " + form.getAttribute("action");
  }

  // A pop-up's filter (Select the Managed Devices) comes back as part of the address the pop-up is loaded from:
  // the server then draws the filter and the list it selects (the count, Select all N) together. Put back into
  // the filter form alone, the list under it would still show what the pop-up opens with.
  function withFilter(url, filter) {
    if (!filter || !filter.length) return url;
    var parts = url.split("?"), params = new URLSearchParams(parts[1] || "");
    filter.forEach(function (kept) { params.delete(kept.name); });
    filter.forEach(function (kept) {
      var values = kept.values || (kept.checked === false ? [] : [kept.value]);
      values.forEach(function (value) { if (value !== "") params.append(kept.name, value); });
    });
    var query = params.toString();
    return parts[0] + (query ? "?" + query : "");
  }

  function notKept(el) { return el.hasAttribute("data-secret") || el.hasAttribute("data-confirmation"); }

  // Ticks a device list carries as hidden inputs (devices ticked on other pages, rows unticked under Select all:
  // "except") are kept too: without them a restored Select all would send the rows the admin had unticked.
  function carriedTick(el) {
    return el.type === "hidden" && (el.name === "device" || el.name === "except") && !!el.closest("[data-ticks-total]");
  }

  function keptFields(form) {
    var fields = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (carriedTick(el)) {
        fields.push({ name: el.name, value: el.value, carried: true });
        return;
      }
      if (!el.name || el.disabled || /^(hidden|password|file|submit|button|reset|image)$/.test(el.type) ||
          el.tagName === "BUTTON" || notKept(el)) return;
      if (el.type === "checkbox" || el.type === "radio") fields.push({ name: el.name, value: el.value, checked: el.checked });
      else if (el.tagName === "SELECT" && el.multiple) {
        fields.push({ name: el.name, values: Array.prototype.filter.call(el.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; }) });
      } else fields.push({ name: el.name, value: el.value });
    });
    return fields;
  }

  function putBack(form, fields) {
    fields.forEach(function (kept) {
      if (kept.carried) return;  // putBackTicks
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name !== kept.name || /^(hidden|password|file)$/.test(el.type) || notKept(el)) return;
        if (el.type === "checkbox" || el.type === "radio") {
          if (el.value === kept.value) el.checked = kept.checked;
        } else if (kept.values) {
          Array.prototype.forEach.call(el.options, function (o) { o.selected = kept.values.indexOf(o.value) >= 0; });
        } else {
          el.value = kept.value;
        }
      });
    });
    putBackTicks(form, fields);
    // A section folded away (Add by serial number) shows what came back into it, and "· N ticked" counts the
    // boxes ticked again: OK must not send more than the admin sees.
    form.querySelectorAll("details").forEach(function (section) {
      var filled = Array.prototype.some.call(section.querySelectorAll("textarea, input[type=text]"),
        function (field) { return field.value.trim() !== ""; });
      if (filled) section.open = true;
    });
    followTicks();
    var note = document.createElement("p");
    note.className = "alert alert-info unsent-form-note";
    note.setAttribute("role", "status");
    note.textContent = "Your session ended before this was sent. What you entered is back (files and passwords " +
      "must be given again): check it and send it again.";
    form.prepend(note);
  }

  // The device list opens on its first page, without the ticks: Select all ticks its rows again but the excepted ones,
  // and a device ticked on a page not shown now is carried as a hidden input, as the pager carries it.
  function putBackTicks(form, fields) {
    var list = form.querySelector("[data-ticks-total]");
    if (!list) return;
    var all = selectsAll(list);
    function row(value) {
      return Array.prototype.find.call(rowsOf(list), function (box) { return box.value === value; });
    }
    function carry(name, value) {
      var there = Array.prototype.some.call(list.querySelectorAll("input[type=hidden]"), function (input) {
        return input.name === name && input.value === value;
      });
      if (there) return;
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      list.prepend(input);
    }
    var excepted = fields.filter(function (kept) { return kept.name === "except" && kept.carried; })
      .map(function (kept) { return kept.value; });
    if (all) {
      excepted.forEach(function (value) { carry("except", value); });
      rowsOf(list).forEach(function (box) {
        var out = excepted.indexOf(box.value) >= 0;
        box.checked = !out;
        if (out) box.removeAttribute("data-by-all"); else box.setAttribute("data-by-all", "");
      });
      return;
    }
    fields.forEach(function (kept) {
      if (kept.name !== "device" || !(kept.carried || kept.checked)) return;
      var box = row(kept.value);
      if (box) box.checked = true;
      else carry("device", kept.value);
    });
  }

  document.body.addEventListener("htmx:beforeOnLoad", function (e) {
    var form = e.detail.elt, xhr = e.detail.xhr;
    if (!xhr || xhr.status !== 401 || !form || form.tagName !== "FORM") return;
    var inPopup = !!form.closest("#modal-content");
    var fields = keptFields(form);
    if (!fields.length || (inPopup && !popupUrl)) return;
    var filter = inPopup ? document.querySelector("#modal-content form[role=search]") : null;
    try {
      sessionStorage.setItem(DRAFT_KEY, JSON.stringify({
        page: pageKey(), popup: inPopup ? withFilter(popupUrl, filter && filter !== form ? keptFields(filter) : null) : null,
        action: formKey(form), admin: document.body.getAttribute("data-admin"), fields: fields, at: Date.now(),
      }));
    } catch (err) { /* storage full or refused: the sign-in page still comes */ }
  });

  // A full-page form (Configuration › Apple) is sent by the browser, not htmx: what it holds is kept as it leaves, and
  // put back only when the server answers with its page marked #unsent-form (security.UNSENT_FORM_MARK: the session
  // had ended, or changed in another tab). Any other answer (saved, or refused with the values shown) drops it.
  var UNSENT_MARK = "#unsent-form";
  document.addEventListener("submit", function (e) {
    var form = e.target, admin = document.body.getAttribute("data-admin");
    if (!admin || e.defaultPrevented || form.tagName !== "FORM" || (form.getAttribute("method") || "").toLowerCase() !== "post" ||
        form.hasAttribute("hx-post") || form.closest("#modal-content")) return;
    var fields = keptFields(form);
    if (!fields.length) return;
    try {
      sessionStorage.setItem(DRAFT_KEY, JSON.stringify({
        page: pageKey(), popup: null, action: formKey(form), admin: admin, fields: fields, at: Date.now(), plain: true,
      }));
    } catch (err) { /* storage full or refused: sent all the same */ }
  });

  function restoreUnsentForm() {
    var draft;
    try {
      draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
    } catch (err) { draft = null; }
    var admin = document.body.getAttribute("data-admin");
    if (!draft && admin && location.hash === UNSENT_MARK) history.replaceState(history.state, "", pageKey());
    if (!draft) return;
    if (!admin) {  // the sign-in page: kept for after it, and said so
      var signIn = document.querySelector("main form, form");
      if (signIn && Date.now() - draft.at <= DRAFT_MAX_AGE_MS) {
        var note = document.createElement("p");
        note.className = "help unsent-form-note";
        note.textContent = "What you entered before your session ended is kept in this tab: it comes back once you " +
          "have signed in.";
        signIn.append(note);
      }
      return;
    }
    sessionStorage.removeItem(DRAFT_KEY);
    if (draft.plain) {
      if (location.hash !== UNSENT_MARK) return;  // taken (saved, or refused and shown again): nothing to put back
      history.replaceState(history.state, "", pageKey());  // a reload must not put it back a second time
    }
    if (draft.page !== pageKey() || draft.admin !== admin || Date.now() - draft.at > DRAFT_MAX_AGE_MS) return;
    function formIn(scope) {
      return Array.prototype.filter.call(scope.querySelectorAll("form"), function (f) {
        return formKey(f) === draft.action;
      })[0];
    }
    // The form may be gone meanwhile (its profile or server deleted, another admin's change): said, not dropped
    // silently, so that the admin knows to do it again.
    var gone = "What you entered before your session ended could not be put back: the form it was typed in is " +
      "no longer there (what it was for may have been deleted or changed meanwhile).";
    var onPage = !draft.popup && formIn(document.getElementById("main") || document.body);
    if (onPage) {
      putBack(onPage, draft.fields);
      return;
    }
    if (!draft.popup) {
      showToast(gone, "warning");
      return;
    }
    htmx.ajax("GET", draft.popup, { target: "#modal-content" }).then(function () {
      var form = formIn(document.getElementById("modal-content"));
      if (!form) {
        showToast(gone, "warning");
        return;
      }
      putBack(form, draft.fields);
      edited = true;  // closing now asks first, as after typing
    });
  }
  document.addEventListener("DOMContentLoaded", restoreUnsentForm);  // this script is deferred: still to come

  // A pop-up whose OK shows its page again (HX-Redirect to the address it was opened on: Assign Server Configuration,
  // Renew a server on the server's page) reloads that page, and the keyboard would start again on <body>, at the top.
  // So what it goes back to on closing (its opener), or what had focus on the page, is described before the page goes
  // (the element itself cannot be kept) and its counterpart on the new page is focused, as after a swap: the same
  // button, or, when the page no longer has it (a warning that is gone), whatever now stands at its place.
  var FOCUS_KEY = "portal.focusAfterReload", FOCUS_MAX_AGE_MS = 30 * 1000;

  function samePage(url) {
    try {
      var to = new URL(url, location.href);
      return to.origin === location.origin && to.pathname + to.search === pageKey();
    } catch (err) { return false; }
  }

  document.body.addEventListener("htmx:beforeOnLoad", function (e) {
    var xhr = e.detail.xhr, redirect = xhr && xhr.status < 300 && xhr.getResponseHeader("HX-Redirect");
    if (!redirect || !samePage(redirect)) return;
    var dlg = modal(), was = dlg && dlg.open && dlg.contains(e.detail.elt) ? opener
      : (focusLost() ? busyFocus : describeFocus(document.activeElement));
    if (!was) return;
    try {
      sessionStorage.setItem(FOCUS_KEY, JSON.stringify({
        page: pageKey(), at: Date.now(), focus: { scopes: was.scopes, tag: was.tag, words: was.words },
      }));
    } catch (err) { /* storage full or refused: the page still comes, with the keyboard at its top */ }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var kept;
    try {
      kept = JSON.parse(sessionStorage.getItem(FOCUS_KEY) || "null");
      sessionStorage.removeItem(FOCUS_KEY);
    } catch (err) { kept = null; }
    if (kept && kept.page === pageKey() && Date.now() - kept.at <= FOCUS_MAX_AGE_MS) restoreFocus(kept.focus);
  });

  document.body.addEventListener("closeModal", closeModal);
  document.body.addEventListener("toast", function (e) { showToast(e.detail.message, e.detail.category, e.detail.key); });
  // A poll that fails (the portal restarting, the network gone) says so once, in a notice that stays while polls keep
  // failing and goes when one is answered again: a toast for each poll, every two seconds, buried the page.
  var pollTrouble = null;

  function fromPoll(detail) {
    var config = detail && detail.requestConfig;
    return !!(config && config.headers && config.headers[POLL_HEADER]);
  }

  function pollFailed(text) {
    if (pollTrouble && pollTrouble.isConnected) return;
    pollTrouble = alertBox(text + " This page is not updated meanwhile; it tries again by itself.", "poll-trouble");
    var main = document.getElementById("main");
    if (main) main.prepend(pollTrouble);
  }

  document.body.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.successful && pollTrouble && fromPoll(e.detail)) {
      pollTrouble.remove();
      pollTrouble = null;
    }
  });
  document.body.addEventListener("htmx:responseError", function (e) {
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(e.detail.xhr.responseText, "text/html");
      var p = doc.querySelector(".error-page p");
      text = p ? p.textContent : "";
    } catch (err) { /* fall through to the generic message */ }
    text = text || ("The request failed (" + e.detail.xhr.status + ").");
    if (fromPoll(e.detail)) pollFailed(text);
    else showError(text, e.detail.elt, e.detail.xhr.status === 404);
  });
  document.body.addEventListener("htmx:sendError", function (e) {
    if (fromPoll(e.detail)) pollFailed("The portal cannot be reached: check your connection.");
    else showError("The portal cannot be reached. Check your connection and try again.", e.detail.elt);
  });

  // A request sent from the open pop-up (a file too large, the object deleted in another tab) says what went wrong
  // in the pop-up, above its form: a toast would sit behind the modal dialog, unseen and unread by screen readers.
  // `gone`: the pop-up's object no longer exists (404): its buttons that would act on it are disabled, Cancel stays.
  function showError(text, elt, gone) {
    var modal = document.getElementById("modal"), content = document.getElementById("modal-content");
    if (!modal || !modal.open || !content || !elt || !content.contains(elt)) {
      showToast(text, "error");
      return;
    }
    content.querySelectorAll(".request-error").forEach(function (old) { old.remove(); });
    var box = alertBox(text, "request-error");
    box.classList.replace("alert-warning", "alert-error");
    var form = content.querySelector("form");
    (form || content).prepend(box);
    if (gone) {
      content.querySelectorAll("button[type=submit], button:not([type])").forEach(function (button) {
        button.disabled = true;
        button.removeAttribute("data-busy");  // not enabled again when the request ends (the double-click guard)
      });
      var cancel = (form || content).querySelector("[data-close-modal]");  // the form's Cancel, not the header's ✕
      if (cancel) cancel.focus();  // the keyboard is not left on a disabled button
    }
  }
})();

// "Or read them from a file" (assignments/_serials_file.html): a CSV or text file of serial numbers goes into the
// Serial numbers box, where the admin sees what OK sends; the file itself is never uploaded (the input has no
// name). A CSV of several columns gives the column whose heading names the serial number; anything else goes in
// as it is, and the server's check of the box says what it cannot read.
(function () {
  var MAX_BYTES = 5 * 1024 * 1024;

  function csvRows(text) {
    var rows = [], row = [], cell = "", quoted = false, i, ch;
    for (i = 0; i < text.length; i++) {
      ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; }
        else if (ch === '"') quoted = false;
        else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === "," || ch === ";" || ch === "\t") { row.push(cell); cell = ""; }
      else if (ch === "\n" || ch === "\r") {
        if (ch === "\r" && text[i + 1] === "\n") i++;
        row.push(cell); rows.push(row); row = []; cell = "";
      } else cell += ch;
    }
    if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
    return rows;
  }

  // The serial numbers of a table with a heading row naming them, one per line; null when there is no such column.
  function serialColumn(text) {
    var rows = csvRows(text.replace(/^\uFEFF/, ""));
    if (!rows.length || rows[0].length < 2) return null;
    var heading = rows[0].map(function (name) { return name.toLowerCase().replace(/[\s_#."'-]/g, ""); });
    var column = heading.findIndex(function (name) { return /^serial(number|no)?s?$/.test(name); });
    if (column < 0) return null;
    return rows.slice(1).map(function (cells) { return (cells[column] || "").trim(); })
      .filter(function (serial) { return serial !== ""; }).join("\n");
  }

  document.addEventListener("change", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("input[type=file][data-read-serials]")) return;
    var box = document.querySelector(input.getAttribute("data-read-serials"));
    var note = document.getElementById(input.getAttribute("aria-describedby"));
    var file = input.files && input.files[0];
    if (!box || !file) return;
    function say(text, error) {
      if (!note) return;
      note.textContent = text;
      note.classList.toggle("error", !!error);
    }
    if (file.size > MAX_BYTES) {
      say("“" + file.name + "” is larger than 5 MB: that is not a list of serial numbers. Nothing was added.", true);
      input.value = "";
      return;
    }
    file.text().then(function (text) {
      // A spreadsheet (.xlsx, .numbers), an image or any binary file reads as NULs, control bytes and U+FFFD (what
      // is not UTF-8): put in the box, it would be a page of garbage and an error the admin cannot act on.
      if (/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text)) {
        say("“" + file.name + "” is not a text file. Save the list as CSV or plain text (one serial number per line) " +
            "and choose that file. Nothing was added.", true);
        input.value = "";
        return;
      }
      var column = serialColumn(text);
      var found = (column === null ? text : column).trim();
      if (!found) {
        say("“" + file.name + "” holds no serial numbers. Nothing was added.", true);
      } else {
        box.value = (box.value.trim() ? box.value.replace(/\s+$/, "") + "\n" : "") + found;
        box.dispatchEvent(new Event("input", { bubbles: true }));
        var lines = found.split(/\r\n|\r|\n/).length;
        say("Read “" + file.name + "”" + (column === null ? "" : " (its serial number column)") + ": " +
            lines.toLocaleString("en-US") + " line" + (lines === 1 ? "" : "s") + " added to the box above. " +
            "Check them, then OK.", false);
      }
      input.value = "";
    }, function () {
      say("“" + file.name + "” could not be read. Nothing was added.", true);
      input.value = "";
    });
  });
})();

// A form opened as a page of its own (form_page.html: a bookmark, a link opened in a new tab) has a Cancel link, not
// the pop-up's Close, which asks before dropping what was typed: leaving the page after typing asks the browser's
// question instead, whatever the way out (Cancel, a link, Back, closing the tab). Sending the form is not leaving.
(function () {
  var edited = false;
  function inUnsavedForm(el) { return el && el.closest && el.closest("[data-warn-unsaved]"); }
  document.addEventListener("input", function (e) {
    if (e.isTrusted && e.target.type !== "search" && inUnsavedForm(e.target)) edited = true;
  });
  document.addEventListener("submit", function (e) { if (inUnsavedForm(e.target)) edited = false; });
  document.body.addEventListener("htmx:beforeRequest", function (e) {
    if (e.detail.elt.tagName === "FORM" && inUnsavedForm(e.detail.elt)) edited = false;
  });
  document.body.addEventListener("htmx:responseError", function (e) {
    if (e.detail.elt.tagName === "FORM" && inUnsavedForm(e.detail.elt)) edited = true;  // still not saved
  });
  document.body.addEventListener("htmx:afterSwap", function (e) {
    // A refusal (422) swaps the form back with the errors: what was typed is still unsaved.
    // (The swapped form's old element is detached by then: the page's card tells instead.)
    if (e.detail.xhr && e.detail.xhr.status === 422 && document.querySelector("[data-warn-unsaved]")) edited = true;
  });
  window.addEventListener("beforeunload", function (e) {
    if (!edited) return;
    e.preventDefault();
    e.returnValue = "";
  });
})();
