"""Todos: one list per profile; add, edit in place, tick off, drag to reorder, delete, each as an htmx partial update.

The first plugin, and a worked example of the plugin interface in plugins/README.md.
"""

from fasthtml.common import *

NAME = "todos"
DISPLAY_NAME = "Todos"
# done is 0 or 1; the list is shown by priority, which dragging rewrites; profile_id makes it per profile.
TABLES = {"todo": dict(id=int, title=str, done=int, priority=int, profile_id=int, pk="id")}


def todo_item(todo):
    url, swap = f"/{NAME}/{todo.id}", dict(hx_target=f"#todo-{todo.id}", hx_swap="outerHTML")
    return Li(Span("⠿", cls="handle", title="Drag to reorder"),
              Input(type="checkbox", checked=bool(todo.done), hx_post=f"{url}/toggle", aria_label="Done", **swap),
              Span(todo.title, hx_get=f"{url}/edit", hx_trigger="click, keydown[key=='Enter']", title="Click to edit",
                   tabindex=0, role="button", cls="title", **swap),
              Button("Delete", hx_delete=url, cls="outline secondary", **swap),
              Input(type="hidden", name="order", value=todo.id),
              id=f"todo-{todo.id}", cls="row done" if todo.done else "row")


def todo_editor(todo):
    url, swap = f"/{NAME}/{todo.id}", dict(hx_target=f"#todo-{todo.id}", hx_swap="outerHTML")
    return Li(Form(Input(name="title", value=todo.title, aria_label="Todo", maxlength=1000, required=True,
                         autofocus=True),
                   Button("Save"), Button("Cancel", type="button", hx_get=url, cls="secondary cancel", **swap),
                   hx_put=url, role="group", **swap),
              Input(type="hidden", name="order", value=todo.id),
              id=f"todo-{todo.id}", cls="row editing")


def todo_list(todos):
    # Dropping a dragged item fires "end" (static/app.js); the hidden inputs post the ids in their new order.
    return Ul(*map(todo_item, todos(order_by="priority, id")), id="todo-list", cls="rows sortable",
              data_empty="Nothing to do yet: add your first todo above.",
              hx_post=f"/{NAME}/order", hx_trigger="end", hx_include="#todo-list [name=order]", hx_swap="none",
              hx_disinherit="*")


def setup(plugin):
    todos = plugin.tables["todo"]

    @plugin.page
    def view():
        return (Hgroup(H2("Todos"), P(f"The list of the profile {plugin.profile().name}. "
                                      "Click a todo to edit it (Escape cancels); drag ⠿ to reorder.")),
                Form(Input(name="title", placeholder="What needs doing?", aria_label="New todo", maxlength=1000,
                           required=True),
                     Button("Add"), hx_post=plugin.url(), hx_target="#todo-list", hx_swap="beforeend",
                     hx_on__after_request="if (event.detail.successful) this.reset()", role="group", cls="add"),
                todo_list(todos))

    # Each handler that writes is one transaction (plugins/README.md): the todo and the chat's note of it are
    # saved together, or neither if anything fails.
    @plugin.route("", methods="post")
    def add(title: str):
        last = max((todo.priority or 0 for todo in todos()), default=0)
        todo = todos.insert(title=plugin.require_text(title, "A todo"), done=0, priority=last + 1)
        plugin.log.info("todo %s added", todo.id)
        plugin.narrate(f"Added the todo: {todo.title}")
        return todo_item(todo)

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
