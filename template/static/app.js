// The app's own behaviour on top of htmx; template-owned.

// Drag to reorder: every .sortable list drags by its .handle. SortableJS fires "end" on the list when an item is
// dropped, which the list's hx-trigger turns into a request.
htmx.onLoad((root) => {
  const lists = root.matches?.(".sortable") ? [root] : root.querySelectorAll?.(".sortable") ?? [];
  for (const list of lists) {
    if (!Sortable.get(list)) new Sortable(list, { handle: ".handle", animation: 150, ghostClass: "dragging" });
  }
});

// A message answers the last request only: clear it when the next one starts.
document.addEventListener("htmx:beforeRequest", () => document.getElementById("message")?.replaceChildren());

// Inline editors (a row of class "editing": a todo's, a profile's): Escape does what their Cancel button does. Once
// the row is back (cancelled or saved), focus returns to the control that opened the editor, the one that gets the
// row's .../edit, so that the keyboard goes on from where it was.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.isComposing) return;
  const cancel = event.target.closest?.(".editing")?.querySelector("button.cancel");
  if (cancel) {
    event.preventDefault();
    // htmx wires a swapped-in row once it has settled (20 ms, longer on a busy machine), and the editor has the focus
    // before that: an Escape that quick would click a button that does nothing yet.
    htmx.process(cancel);
    cancel.click();
  }
});

// Other swaps may come between (the chat's model picker loads itself, slowly on a busy machine): only the swap that
// brings the row back gives the focus, and no other swap forgets the row.
let closingEditor = null;  // the id of the row whose editor a response being swapped in replaces
document.addEventListener("htmx:beforeSwap", (event) => {
  const editor = document.activeElement?.closest(".editing");
  if (editor && event.detail.target.contains(editor)) closingEditor = editor.id;
});
htmx.onLoad((loaded) => {
  const row = closingEditor && document.getElementById(closingEditor);
  if (row && loaded.contains(row) && !row.matches(".editing")) {
    row.querySelector('[hx-get$="/edit"]')?.focus();
    closingEditor = null;
  }
});
