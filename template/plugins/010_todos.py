"""Todos: one list per profile; add, edit in place, tick off, drag to reorder, delete, each as an htmx partial update.

The first plugin, and a worked example of the plugin interface in plugins/README.md.
"""

import functools
from html import escape

from fasthtml.common import *

from core.layout import HOLE, drawn_around

NAME = "todos"
DISPLAY_NAME = "Todos"
# done is 0 or 1; the list is shown by priority, which dragging rewrites; profile_id makes it per profile.
TABLES = {"todo": dict(id=int, title=str, done=int, priority=int, profile_id=int, pk="id")}


def todo_item(todo):
    "A todo as the list shows it."
    return drawn_item(todo.id, todo.title, todo.done)


@functools.lru_cache(maxsize=10_000)  # a long list costs a lookup per todo, an edited todo is drawn anew
def drawn_item(todo_id: int, title: str, done: int) -> Safe:
    "A todo drawn as HTML: its state's row, with its id and title put in (µs, where its components took 0.3 ms)."
    return Safe(item_row(bool(done)).replace(TODO_ID, str(todo_id)).replace(TODO_TITLE, escape(title, quote=False)))


TODO_ID, TODO_TITLE = "TODO_ID", "TODO_TITLE"  # the row's places for a todo's id and its title (escaped as to_xml does)


@functools.cache
def item_row(done: bool) -> str:
    "The row of a todo done or not, drawn once: a long list shows at once after a start, not after 0.3 ms a todo."
    url = f"/{NAME}/{TODO_ID}"
    # The row's hx-target and hx-swap are inherited by its controls: each of them swaps the whole row.
    return to_xml(Li(Span("⠿", cls="handle", role="button", tabindex=0, title="Drag to reorder",
                          aria_label="Move: Alt+Up or Alt+Down", aria_keyshortcuts="Alt+ArrowUp Alt+ArrowDown"),
                     Input(type="checkbox", checked=done, hx_post=f"{url}/toggle", aria_label="Done"),
                     Span(TODO_TITLE, hx_get=f"{url}/edit", hx_trigger="click, keydown[key=='Enter']",
                          title="Click to edit", tabindex=0, role="button", cls="title"),
                     Button("Delete", hx_delete=url, cls="outline secondary"),
                     Input(type="hidden", name="order", value=TODO_ID),
                     id=f"todo-{TODO_ID}", cls="row done" if done else "row", hx_target="this", hx_swap="outerHTML"),
                  indent=False)


def todo_editor(todo):
    url = f"/{NAME}/{todo.id}"
    return Li(Form(Input(name="title", value=todo.title, aria_label="Todo", maxlength=1000, required=True,
                         autofocus=True),
                   Button("Save"), Button("Cancel", type="button", hx_get=url, cls="secondary cancel"),
                   hx_put=url, role="group", cls="editor"),
              Input(type="hidden", name="order", value=todo.id),
              id=f"todo-{todo.id}", cls="row", hx_target="this", hx_swap="outerHTML")


@functools.lru_cache(maxsize=100)  # the same for every view of a profile's list
def list_top(profile_name: str) -> Safe:
    "The title, and the form that adds a todo to the end of the list."
    return to_xml((
        Hgroup(H1("Todos"), P(f"The list of the profile {profile_name}. Click a todo to edit it (Escape cancels); "
                              "drag ⠿ to reorder, or press Alt+↑ / Alt+↓ on it.")),
        Form(Input(name="title", placeholder="What needs doing?", aria_label="New todo", maxlength=1000, required=True),
             Button("Add"), hx_post=f"/{NAME}", hx_target="#todo-list", hx_swap="beforeend",
             # a refusal (422, its message shown) keeps what was typed
             hx_on__after_request="if (event.detail.xhr.status < 300) this.reset()", role="group", cls="add")),
        indent=False)


def todo_list(db, profile_id: int) -> Safe:
    """The profile's todos, read with one query of the columns shown (fastlite's todos() makes a dataclass of
    every row, some 6 µs each) and joined here: to_xml appends children to a string one by one, copying a long
    list over and over (some 40 ms for 1,000 todos)."""
    rows = db.execute("SELECT id, title, done FROM todo WHERE profile_id = ? ORDER BY priority, id", [profile_id])
    before, after = list_ends()
    return Safe(before + "".join(drawn_item(*row) for row in rows) + after)


@functools.cache
def list_ends() -> list[Safe]:
    """The list around its items, drawn once (a component costs tens of µs, and every view shows it). Dropping a
    dragged item fires "end" (static/app.js); the hidden inputs post the ids in their new order."""
    return drawn_around(Ul(HOLE, id="todo-list", cls="rows sortable",
                           data_empty="Nothing to do yet: add your first todo above.", hx_post=f"/{NAME}/order",
                           hx_trigger="end", hx_include="#todo-list [name=order]", hx_swap="none", hx_disinherit="*"))


def setup(plugin):
    todos = plugin.tables["todo"]

    @plugin.page
    def view():
        profile = plugin.profile()
        return list_top(profile.name), todo_list(plugin.db, profile.id)

    def added(title: str):
        last = max((todo.priority or 0 for todo in todos()), default=0)
        todo = todos.insert(title=plugin.require_text(title, "A todo"), done=0, priority=last + 1)
        plugin.log.info("todo %s added", todo.id)
        plugin.narrate(f"Added the todo: {todo.title}")
        return todo

    # Each handler that writes is one transaction (plugins/README.md): the todo and the chat's note of it are
    # saved together, or neither if anything fails.
    @plugin.route("", methods="post")
    def add(title: str): return todo_item(added(title))

    # The assistant's tools: it reads the list at once, and adds a todo once the person clicks Run on its card.
    @plugin.tool
    def list_todos() -> list[dict]:
        "The profile's todos in the list's order: each one's title and whether it is done."
        return [{"title": todo.title, "done": bool(todo.done)} for todo in todos(order_by="priority, id")]

    @plugin.tool(card="add the todo “{title}”")
    def add_todo(title: str) -> str:
        """Adds a todo to the end of the profile's list.

        Args:
            title: what needs doing, in one line
        """
        return f"Added the todo: {added(title).title}"

    @plugin.route("/{todo_id}", methods="get")
    def show(todo_id: int): return todo_item(todos[todo_id])

    @plugin.route("/{todo_id}/edit", methods="get")
    def edit(todo_id: int): return todo_editor(todos[todo_id])

    @plugin.route("/{todo_id}", methods="put")
    def rename(todo_id: int, title: str):
        todo = todos[todo_id]
        todo.title = plugin.require_text(title, "A todo")
        todos.update(todo)
        plugin.log.info("todo %s edited", todo.id)
        return todo_item(todo)

    @plugin.route("/{todo_id}/toggle", methods="post")
    def toggle(todo_id: int):
        todo = todos[todo_id]
        todo.done = 0 if todo.done else 1
        todos.update(todo)
        plugin.log.info("todo %s %s", todo.id, "done" if todo.done else "reopened")
        plugin.narrate(f"{'Completed' if todo.done else 'Reopened'} the todo: {todo.title}")
        return todo_item(todo)

    @plugin.route("/{todo_id}", methods="delete")
    def delete(todo_id: int):
        todo = todos[todo_id]
        todos.delete(todo.id)
        plugin.log.info("todo %s deleted", todo.id)
        plugin.narrate(f"Deleted the todo: {todo.title}")

    @plugin.route("/order", methods="post")
    def reorder(order: list[int]):
        "Each todo's priority becomes its place in the posted order; an id not in this profile's list is a 404."
        for priority, todo_id in enumerate(order): todos.update(id=todos[todo_id].id, priority=priority)
        plugin.log.info("todos reordered")
