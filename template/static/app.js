// The app's own behaviour on top of htmx; template-owned.

// Drag to reorder: every .sortable list drags by its .handle. SortableJS fires "end" on the list when an item is
// dropped, which the list's hx-trigger turns into a request.
htmx.onLoad((root) => {
  const lists = root.matches?.(".sortable") ? [root] : root.querySelectorAll?.(".sortable") ?? [];
  for (const list of lists) {
    if (!Sortable.get(list)) new Sortable(list, { handle: ".handle", animation: 150, ghostClass: "dragging" });
  }
});

// The keyboard reorders too: Alt+ArrowUp / Alt+ArrowDown on an item (or its handle) moves it one place, sends the
// same "end" a drop sends, keeps the focus where it was and says the new place in a polite live region.
document.addEventListener("keydown", (event) => {
  const step = { ArrowUp: -1, ArrowDown: 1 }[event.key];
  const item = event.target.closest?.(".sortable > *");
  if (!step || !event.altKey || !item) return;
  event.preventDefault();
  const list = item.parentElement;
  const neighbour = step < 0 ? item.previousElementSibling : item.nextElementSibling;
  if (neighbour) {
    neighbour.insertAdjacentElement(step < 0 ? "beforebegin" : "afterend", item);
    event.target.focus();  // moving the item took the focus away from it
    list.dispatchEvent(new CustomEvent("end", { bubbles: true }));
  }
  announcer.textContent = `Moved to ${[...list.children].indexOf(item) + 1} of ${list.children.length}`;
});

// The live region is in the page from the start: screen readers say only changes of a region they already know.
const announcer = Object.assign(document.createElement("div"), { className: "visually-hidden", id: "announcer" });
announcer.setAttribute("aria-live", "polite");
document.addEventListener("DOMContentLoaded", () => document.body.append(announcer));

// What the server pushes over the chat's WebSocket (a job's progress, a finished run) goes to every open tab of the
// profile, whatever page it shows; a tab without a fragment's target has nothing to update there (it shows another
// app, or has not yet drawn the job that just started), so the fragment is left out, not swapped as an error.
htmx.defineExtension("where-shown", {
  transformResponse(text) {
    const frame = document.createElement("template");
    frame.innerHTML = text;
    const parts = [...frame.content.children];
    const shown = parts.filter((part) => {
      const oob = part.getAttribute("hx-swap-oob") ?? "true";
      const target = oob.includes(":") ? oob.slice(oob.indexOf(":") + 1) : part.id && `#${CSS.escape(part.id)}`;
      return !target || document.querySelector(target);
    });
    if (shown.length === parts.length) return text;
    return shown.map((part) => part.outerHTML).join("");
  },
});

// A message answers the last request only: clear it when the next one starts.
document.addEventListener("htmx:beforeRequest", () => document.getElementById("message")?.replaceChildren());

// Inline editors (a form of class "editor" in a row: a todo's, a profile's): Escape does what their Cancel button
// does. Once the row is back (cancelled or saved), focus returns to the control that opened the editor, the one that
// gets the row's .../edit, so that the keyboard goes on from where it was.
// The marker is on the form, not on the row: htmx swaps a row in with the attributes of the row it replaces (same id)
// until it settles (20 ms, seconds on a busy machine), so a row marked as an editor would not read as one until then,
// and an Escape that quick did nothing. The browser's own autofocus gives the editor the focus before that, too.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.isComposing) return;
  const cancel = event.target.closest?.("form.editor")?.querySelector("button.cancel");
  if (cancel) {
    event.preventDefault();
    htmx.process(cancel);  // htmx wires a swapped-in row once it has settled: before that its Cancel does nothing
    cancel.click();
  }
});

// An editor opens with the cursor after the old text, the first time it has the focus (the browser's autofocus or
// htmx's, whichever comes first); later a click places the cursor where it falls.
const placed = new WeakSet();
document.addEventListener("focusin", ({ target }) => {
  if (placed.has(target) || !target.matches("form.editor input")) return;
  placed.add(target);
  target.setSelectionRange(target.value.length, target.value.length);
});

// Other swaps may come between (the chat's model picker loads itself, slowly on a busy machine): only the swap that
// brings the row back gives the focus, and no other swap forgets the row.
let closingEditor = null;  // the id of the row whose editor a response being swapped in replaces
document.addEventListener("htmx:beforeSwap", (event) => {
  const row = document.activeElement?.closest("form.editor")?.closest("[id]");
  if (row && event.detail.target.contains(row)) closingEditor = row.id;
});
htmx.onLoad((loaded) => {
  const row = closingEditor && document.getElementById(closingEditor);
  if (row && loaded.contains(row) && !row.querySelector("form.editor")) {
    row.querySelector('[hx-get$="/edit"]')?.focus();
    closingEditor = null;
  }
});

// The side panels (the chat) fold away so that a wide table has the page's width, and come back: at once on the
// click, while the button's own request remembers the choice for the profile (server.py, /side/fold).
document.addEventListener("click", (event) => {
  const button = event.target.closest(".fold-side");
  if (!button) return;
  const folded = button.closest(".workspace").classList.toggle("side-folded");
  button.textContent = folded ? "Show the chat" : "Hide the chat";
  button.setAttribute("aria-expanded", String(!folded));
  button.setAttribute("hx-vals", JSON.stringify({ folded: !folded }));
  dispatchEvent(new Event("resize"));  // what fits itself to its place (the chat's height) measures again
});
