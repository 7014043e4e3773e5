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
