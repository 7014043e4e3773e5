"""Notebook apps: a notebook in notebooks/apps/ whose cells carry tags is served as a workflow, with no Python
written for it. plugins/050_notebook_apps.py serves one app per notebook; plugins/README.md shows how to make one.

The tags (JupyterLab: the cell's property inspector, Add Tag):
    parameters    the cell of inputs (papermill's tag): each NAME = literal becomes a field of a form
    step: Title   the first cell of a step; the untagged cells after it join it
    skip          a cell the app leaves out (a chart for the notebook's reader only, say)
Code cells before the first step are set-up, run before every step. The notebook is only read, never written: it
runs top to bottom in JupyterLab as it did.

A parameter's field goes to the first step whose cells read it. Its type is its default's; its help is the comment
beside it (or the comment lines above it); Colab's hints give choices (`# @param ["a", "b"]`) and ranges
(`# @param {type:"slider", min:1, max:50}`). Everything is read with `ast` and `tokenize`, never run.

How a step runs is notebook_kernel.py's part.
"""

import ast
import io
import json
import logging
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from fasthtml.common import *

STEP_TAG = "step:"
SKIP_TAG = "skip"
log = logging.getLogger("app")
KINDS = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}  # the defaults a form can ask for


@dataclass
class Parameter:
    name: str
    default: object
    help: str = ""
    choices: list | None = None
    low: float | None = None
    high: float | None = None

    @property
    def kind(self) -> str: return KINDS[type(self.default)]

    @property
    def label(self) -> str: return self.name.replace("_", " ").capitalize()

    @property
    def long(self) -> bool:
        "A text area's: a list, or a string on several lines."
        return self.kind == "list" or (self.kind == "str" and "\n" in self.default)


@dataclass
class NotebookStep:
    id: str
    title: str
    cells: list[int]  # indices of its code cells in the notebook
    fields: list[Parameter] = field(default_factory=list)


@dataclass
class NotebookApp:
    path: Path
    title: str
    intro: str
    sources: list[str]  # every cell's, as the notebook was when the app started
    setup: list[int]  # code cells run before every step
    parameters: int | None  # the parameters cell's index
    steps: list[NotebookStep]

    @property
    def name(self) -> str: return "notebook_" + re.sub(r"\W+", "_", self.path.stem)


# --- Reading the source: with ast, as the kernel would (IPython's magics made Python first)
def python(source: str) -> ast.Module:
    "The cell's tree; IPython's transformer only for a cell that is not plain Python (IPython takes a second to import)."
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try: return compile(source, "<cell>", "exec", flags)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager
        return compile(TransformerManager().transform_cell(source), "<cell>", "exec", flags)


def names_read(source: str) -> set[str]:
    try: tree = python(source)
    except SyntaxError: return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def comments(source: str) -> dict[int, tuple[str, bool]]:
    "Line number -> (the comment's text, whether it is alone on its line)."
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            alone = not token.line[:token.start[1]].strip()
            found[token.start[0]] = (token.string.lstrip("#").strip(), alone)
    return found


def colab_hint(hint: str) -> dict:
    "Colab's `@param` hint: a list of choices, or {type:..., min:..., max:...} (JavaScript's keys without quotes)."
    if not hint: return {}
    try:
        if hint.startswith("["): return {"choices": list(ast.literal_eval(hint))}
        quoted = re.sub(r"([{,]\s*)(\w+)\s*:", r'\1"\2":', hint)
        return dict(json.loads(quoted.replace("True", "true").replace("False", "false")))
    except (ValueError, SyntaxError, TypeError):
        log.warning("a @param hint that is neither a list nor {key: value, ...} is left out: %s", hint[:80])
        return {}


def parameter(node: ast.Assign, notes: dict) -> Parameter | None:
    "The parameter an assignment NAME = literal makes, with its help and hints; None for anything else."
    if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name): return None
    try: default = ast.literal_eval(node.value)
    except ValueError: return None
    if type(default) not in KINDS: return None
    text, alone = notes.get(node.end_lineno, ("", True))
    beside, hint = text.partition("@param")[::2] if not alone else ("", "")
    above, line = [], node.lineno - 1
    while line in notes and notes[line][1]:
        above.insert(0, notes[line][0])
        line -= 1
    hints = colab_hint(hint.strip())
    return Parameter(node.targets[0].id, default, beside.strip() or " ".join(above), hints.get("choices"),
                     hints.get("min"), hints.get("max"))


def parameters(source: str) -> list[Parameter]:
    tree, notes = python(source), comments(source)
    found = [parameter(node, notes) for node in tree.body if isinstance(node, ast.Assign)]
    return [p for p in found if p]


def step_title(cell: dict) -> str | None:
    tags = cell["metadata"].get("tags", [])
    return next((tag[len(STEP_TAG):].strip() for tag in tags if tag.startswith(STEP_TAG)), None)


def notebook_cells(path: Path) -> list[dict]:
    """The cells of a notebook, each source one text. A version-4 notebook (JupyterLab's) is read as JSON: nbformat
    would import its schema validator, seconds of the app's start, only to log what it finds; older ones it converts."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    if notebook.get("nbformat") != 4:
        import nbformat
        return nbformat.read(path, as_version=4).cells
    return [cell | {"source": "".join(cell["source"])} for cell in notebook["cells"]]


def read_app(path: Path) -> NotebookApp | None:
    "The app a notebook makes; None when no cell is tagged as a step."
    cells = notebook_cells(path)
    setup, params, steps = [], None, []
    for index, cell in enumerate(cells):
        tags = cell["metadata"].get("tags", [])
        if title := step_title(cell): steps.append(NotebookStep(f"step{len(steps) + 1}", title, []))
        if cell["cell_type"] != "code" or SKIP_TAG in tags: continue
        if "parameters" in tags: params = index
        elif steps: steps[-1].cells.append(index)
        else: setup.append(index)
    if not steps: return None
    fields = parameters(cells[params]["source"]) if params is not None else []
    for p in fields:  # to the first step that reads it; the first step when none does
        reads = [step for step in steps if any(p.name in names_read(cells[i]["source"]) for i in step.cells)]
        (reads or steps)[0].fields.append(p)
    heading = next((cell["source"] for cell in cells if cell["cell_type"] == "markdown"), "")
    title, _, intro = heading.partition("\n")
    return NotebookApp(path, title.lstrip("# ").strip() or path.stem, intro.strip().split("\n\n")[0],
                       [cell["source"] for cell in cells], setup, params, steps)


def apps(folder: Path) -> list[NotebookApp]:
    "The apps of the notebooks in folder; one that cannot be read is logged and left out, and the others served."
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        try: found.append(read_app(path))
        except (OSError, ValueError, KeyError, TypeError, SyntaxError) as error:
            log.warning("notebooks/apps/%s is not served: %s", path.name, error)
    return [app for app in found if app]


# --- Forms: a field per parameter, read back as data
def field_input(p: Parameter, value):
    help = Small(p.help) if p.help else None
    if p.kind == "bool":
        return Label(Input(type="checkbox", name=p.name, checked=bool(value)), p.label, help)
    if p.choices:
        options = [Option(choice, value=str(choice), selected=choice == value) for choice in p.choices]
        return Label(p.label, Select(*options, name=p.name), help)
    if p.long:
        text = "\n".join(map(str, value)) if p.kind == "list" else value
        return Label(p.label, Textarea(text, name=p.name, rows=6), help)
    number = dict(type="number", step="1" if p.kind == "int" else "any", min=p.low, max=p.high)
    return Label(p.label, Input(name=p.name, value=value, **(number if p.kind in ("int", "float") else {})), help)


def step_form(step: NotebookStep, inputs: dict):
    return (*[field_input(p, inputs.get(p.name, p.default)) for p in step.fields], Button(f"Run “{step.title}”"))


def number(p: Parameter, text: str):
    try: value = int(text) if p.kind == "int" else float(text)
    except ValueError:
        raise ValueError(f"{p.label} must be a {'whole ' if p.kind == 'int' else ''}number.") from None
    if p.low is not None and p.high is not None and not p.low <= value <= p.high:
        raise ValueError(f"{p.label} must be between {p.low:g} and {p.high:g}.")
    if p.low is not None and value < p.low: raise ValueError(f"{p.label} must be at least {p.low:g}.")
    if p.high is not None and value > p.high: raise ValueError(f"{p.label} must be at most {p.high:g}.")
    return value


def field_value(p: Parameter, form):
    "What the form gives for the parameter, of its type; ValueError says what is wrong, in a sentence."
    if p.kind == "bool": return form.get(p.name) is not None
    text = form.get(p.name, "")
    if p.choices:
        chosen = {str(choice): choice for choice in p.choices}
        if text not in chosen: raise ValueError(f"{p.label} must be one of {', '.join(chosen)}.")
        return chosen[text]
    if p.kind in ("int", "float"): return number(p, text.strip())
    if p.kind == "list":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not (p.default and all(type(v) is int for v in p.default)): return lines
        try: return [int(line) for line in lines]
        except ValueError: raise ValueError(f"{p.label} takes a whole number a line.") from None
    return text.replace("\r\n", "\n")


def injected(values: dict) -> str:
    "The cell that sets the parameters in the kernel: a JSON text, parsed there; no value is ever Python source."
    return f"globals().update(__import__('json').loads({json.dumps(values)!r}))"
