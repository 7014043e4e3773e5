"""Migration 0.2.0: the template's modules move into the package core/ (its SEO workbench in core/seo/, the update
tools in core/update/), and the fork's own code that imports them follows.

The template's files move with the update itself (its rename handling keeps your edits to them). What it cannot move
is your own code: plugins from 500 up, notebooks, tests and modules of your own that import `crawler`, `workflows`,
`config`... This rewrites each such import in your Python files and notebooks' code cells, and a quoted file name of
a moved module ("crawler.py", as the starter notebooks find the project's root by), printing each line it changed. A
module the move split (chat and workflows are packages now, botify and template_sync gave parts to modules beside
them) keeps its API where it was; `from chat import name` (on one line) of a name that went to one of its parts
imports it from there. A line it cannot rewrite safely (several modules on one `import`, a module named in a string
to import_module, patch or `python -m`) is named with its fix, for you to make. Copier runs this in the fork after
the merge when an update crosses 0.2.0; the template's own move script runs the same rewrite (MOVED is the one list
of what went where). Usage: modules_into_core.py [ROOT]
"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

MOVED = {
    **dict.fromkeys(["assistant_tools", "botify", "chat", "config", "database", "explore", "exports", "guard",
                     "notebook_apps", "notebook_kernel", "notebook_tables", "workflows"], "core"),
    **dict.fromkeys(["crawl_cli", "crawl_compare", "crawler", "extraction", "fetching", "findings", "link_check",
                     "onpage", "rendering", "sitemaps", "url_checker", "validation"], "core.seo"),
    **dict.fromkeys(["fork_check", "template_merge", "template_sync", "template_transaction", "template_upstream"],
                    "core.update"),
}
NAMES = "|".join(sorted(MOVED, key=len, reverse=True))
FROM_IMPORT = re.compile(rf"^(\s*)from ({NAMES})(\s+import\b)")
FROM_NAMES = re.compile(rf"^(\s*)from ({NAMES}) import ([\w ,]+?)(\s*(?:#.*)?)$")  # on one line: each name to its home
IMPORT = re.compile(rf"^(\s*)import ({NAMES})(\s+as\s+\w+)?(\s*(?:#.*)?)$")
FILE_NAME = re.compile(rf"""(["'])({NAMES})\.py\1""")
# Mentions this cannot rewrite safely: several modules on one import, a module's name given as a string.
UNSAFE = re.compile(rf"""^\s*import\s+.*,.*\b({NAMES})\b|(?:import_module\(|sys\.modules\[|patch\(|["']-m["'],\s*)"""
                    rf"""["']({NAMES})\b|\s-m\s+({NAMES})\b""")


def rewritten(line: str, own: set[str], parts: dict[str, dict[str, str]]) -> str:
    """The line with the moved modules' new names (but for the fork's own modules of such a name), or as it is.
    parts: for each split module, where its names that left it went (split_parts)."""
    end = line[len(line.rstrip("\r\n")):]
    if (found := FROM_NAMES.match(line.removesuffix(end))) and found[2] not in own and parts.get(found[2]):
        return from_homes(found, parts[found[2]], end)
    line = FROM_IMPORT.sub(lambda m: m[0] if m[2] in own else f"{m[1]}from {MOVED[m[2]]}.{m[2]}{m[3]}", line)
    line = IMPORT.sub(lambda m: m[0] if m[2] in own else f"{m[1]}from {MOVED[m[2]]} import {m[2]}{m[3] or ''}{m[4]}",
                      line)
    return FILE_NAME.sub(lambda m: m[0] if m[2] in own else f"{m[1]}{MOVED[m[2]].replace('.', '/')}/{m[2]}.py{m[1]}",
                         line)


def from_homes(found: re.Match, parts: dict[str, str], end: str) -> str:
    "`from module import names` as an import from each home of its names: the module's new one, or a part's."
    indent, module, names, comment = found.groups()
    homes: dict[str, list[str]] = {}
    for name in (name.strip() for name in names.split(",")):
        homes.setdefault(parts.get(name.split(" as ")[0], f"{MOVED[module]}.{module}"), []).append(name)
    return end.join(f"{indent}from {home} import {', '.join(names)}" for home, names in homes.items()) + comment + end


def bound(path: Path, imports: bool) -> set[str]:
    "The names a module defines at its top level (functions, classes, assignments), and those it imports if asked."
    names = set()
    for node in ast.parse(read(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
        elif imports and isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def split_parts(root: Path, module: str) -> dict[str, str]:
    """Where the names of a split module went: name -> the module beside its new home (in it, for a package) that
    defines it, for each name the home itself does not hold. Read from the fork's files as the update left them."""
    home = root / MOVED[module].replace(".", "/") / module
    file = home / "__init__.py" if home.is_dir() else home.with_suffix(".py")
    if not file.is_file():
        return {}
    held, parts = bound(file, imports=True), {}
    for part in sorted((home if home.is_dir() else home.parent).glob("*.py")):
        for name in bound(part, imports=False) - held:
            parts.setdefault(name, ".".join(part.relative_to(root).with_suffix("").parts))
    return parts


def unsafe(line: str, own: set[str]) -> str | None:
    "The moved module a line names in a way left for the person to fix, or None."
    found = UNSAFE.search(line)
    name = found and next(name for name in found.groups() if name)
    return None if name in own else name


def rewrite_lines(lines: list[str], where: str, report: list[str], own: set[str], parts: dict) -> list[str]:
    """lines (each with its line end), rewritten; every change and every line left to fix goes to report."""
    result = []
    for number, line in enumerate(lines, 1):
        new = rewritten(line, own, parts)
        if new != line:
            shown = "; ".join(part.strip() for part in new.splitlines())  # one line per home, when names split
            report.append(f"  {where}:{number}: {line.strip()}  ->  {shown}")
        elif name := unsafe(line, own):
            report.append(f"  {where}:{number}: {line.strip()}  ->  NOT REWRITTEN: {name} is now "
                          f"{MOVED[name]}.{name}; change this line to name it so")
        result.append(new)
    return result


def read(path: Path) -> str:
    with open(path, newline="") as file:  # line ends as they are
        return file.read()


def write(path: Path, text: str) -> None:
    with open(path, "w", newline="") as file:
        file.write(text)


def rewrite_python(path: Path, name: str, report: list[str], own: set[str], parts: dict) -> str | None:
    text = read(path)
    new = "".join(rewrite_lines(text.splitlines(True), name, report, own, parts))
    return new if new != text else None


def rewrite_notebook(path: Path, name: str, report: list[str], own: set[str], parts: dict) -> str | None:
    """The notebook's code cells rewritten, written back in Jupyter's own format (one-space indent, keys in their
    order, non-ASCII as it is), or None when nothing changed."""
    text = read(path)
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError:
        return None
    changed = False
    for index, cell in enumerate(notebook.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"]
        lines = source.splitlines(True) if isinstance(source, str) else source
        new = rewrite_lines(lines, f"{name} (cell {index})", report, own, parts)
        if new != lines:
            cell["source"] = "".join(new) if isinstance(source, str) else new
            changed = True
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n" if changed else None


def own_files(root: Path) -> list[str]:
    "The Python files and notebooks git sees (committed or not, not ignored)."
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    return sorted(name for name in listed if name.endswith((".py", ".ipynb")) and (root / name).is_file())


def migrate(root: Path) -> list[str]:
    # A module of that name still in the root is the fork's own (or its edited copy of the template's, kept there by
    # the update): imports of it stay as they are.
    own = {name for name in MOVED if (root / f"{name}.py").is_file()}
    report = [f"  {name}.py is in the project's root, so imports of it are left as they are" for name in sorted(own)]
    parts = {module: split_parts(root, module) for module in MOVED if module not in own}
    for name in own_files(root):
        rewrite = rewrite_notebook if name.endswith(".ipynb") else rewrite_python
        if (new := rewrite(root / name, name, report, own, parts)) is not None:
            write(root / name, new)
    return report


if __name__ == "__main__":
    if report := migrate(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print("The template's modules are now in core/ (core/seo/, core/update/); your code that imports them:",
              *report, sep="\n", file=sys.stderr)
