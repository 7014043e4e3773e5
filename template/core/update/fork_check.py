"""Checks this fork's own Python code against the template's modules: `./run check`, and `./run update` after it
has merged a release.

Template-owned: `copier update` keeps it current. A release can change a helper your code calls: a new required
parameter, a renamed function, a module gone. The template's tests still pass, and your plugin's route answers 500
the first time someone uses it. This names each such call, file:line, before then.

The checker is mypy: the reference checker for Python, installed from PyPI like the rest (pyright would need
Node), and offline. It checks each call's arguments against the function called, annotated or not, and with
--check-untyped-defs the bodies of your unannotated functions too (setup(plugin), tests). Only your files are
checked: it reads the template's modules (following imports silently) to know their functions, but their own
typing is the template's business. And only what fails at run time whatever the types say is reported: a call
with arguments its function does not take, a name or a module's attribute that is not there, a module that is
gone. A type mismatch in code that runs (a str where the hint says int) is not, or an update would stop on code
that works.

A plugin's setup(plugin) takes the core's Plugin (server.py) unannotated, as plugins/README.md shows it: mypy
would take it for Any and check no call made through it. So each plugin file is checked as if its setup said
setup(plugin: server.Plugin), its lines unchanged (mypy's --shadow-file), and plugin.require_text(...) is checked,
in its routes too. What no checker can follow is not checked: a helper reached with getattr() or importlib, or a
method of a value an unannotated helper returns (mypy takes it for Any).
"""

import ast
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from core.update.template_clone import Template, read_answers, template_url

MYPY = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--follow-untyped-imports", "--check-untyped-defs",
        "--no-error-summary", "--no-pretty", "--no-color-output", "--show-error-codes"]
# What mypy learnt of the modules (some seconds of work) is kept in .venv, out of git's way; MYPY_CACHE_DIR
# puts it elsewhere.
CACHE = {"MYPY_CACHE_DIR": ".venv/mypy-cache"}
# The findings that break at run time; a module's missing attribute only when the module is one of this fork's
# (a library may make its names at run time, as fasthtml.svg does).
MISFIT = re.compile(r": error: .*\[(call-arg|name-defined|import-not-found|syntax)\]$"
                    r'|: error: (Module (has no attribute|"(?P<module>[\w.]+)" has no attribute)|"Plugin" has no '
                    r"attribute) .*\[attr-defined\]$")
# The name a plugin file is checked with for the core's module (one no plugin would use: it is added to the file).
CORE = "_fork_check_server"


def say(message: str) -> None:
    print(message, file=sys.stderr)


def own_modules(template_files: Iterable[str]) -> list[str]:
    """This fork's own Python files: those git sees (committed or not, not ignored) that the template does not
    render (plugins numbered 500 and up, its tests, its other modules)."""
    rendered = set(template_files)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split("\0")
    return sorted(path for path in listed if path.endswith(".py") and path not in rendered and Path(path).is_file())


def is_misfit(line: str) -> bool:
    found = MISFIT.search(line)
    module = found and found["module"]
    return bool(found) and (not module or Path(*module.split(".")).with_suffix(".py").is_file())


def typed_plugin(text: str) -> str | None:
    """A plugin file's text with its setup(plugin) annotated as the core's Plugin, on the same line so that every
    line keeps its number; None when it has no such setup."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None  # mypy says where
    setups = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "setup"
              and node.args.args and node.args.args[0].annotation is None]
    if not setups:
        return None
    parameter = setups[0].args.args[0]
    lines = text.splitlines(keepends=True)
    line = lines[parameter.lineno - 1].encode()  # ast counts columns in UTF-8 bytes
    end = parameter.end_col_offset
    lines[parameter.lineno - 1] = (line[:end] + f': "{CORE}.Plugin"'.encode() + line[end:]).decode()
    return "".join(lines) + f"\nimport server as {CORE}\n"


def shadows(paths: list[str], scratch: Path) -> list[str]:
    """mypy's --shadow-file options that check each plugin file with its setup(plugin) typed, when there is a core."""
    if not Path("server.py").is_file():
        return []
    options = []
    for number, path in enumerate(paths):
        if Path(path).parent.name == "plugins" and (typed := typed_plugin(Path(path).read_text())):
            shadow = scratch / f"{number}.py"
            shadow.write_text(typed)
            options += ["--shadow-file", path, str(shadow)]
    return options


def misfits(paths: list[str]) -> list[str]:
    """mypy's findings in paths that fail at run time, as file:line: error: message [code]."""
    with tempfile.TemporaryDirectory(prefix="fork-check-") as scratch:
        checked = subprocess.run([*MYPY, *shadows(paths, Path(scratch)), *paths], capture_output=True, text=True,
                                 env=CACHE | os.environ)
    if checked.returncode > 1:  # mypy could not check them (a crash, two modules of one name): all it said
        return (checked.stdout + checked.stderr).strip().splitlines()
    return [line for line in checked.stdout.splitlines() if is_misfit(line)]


def check(paths: list[str]) -> int:
    if not paths:
        say("No Python files of your own to check.")
        return 0
    if found := misfits(paths):
        say("Your code no longer fits the template's modules here (mypy):")
        say("\n".join(f"  {line}" for line in found))
        return 1
    say(f"Your code fits the template's modules ({len(paths)} file(s) of yours checked).")
    return 0


def rendered_files() -> set[str]:
    "The files the template renders for this fork: a fresh render of the release it records."
    answers = read_answers()
    with tempfile.TemporaryDirectory(prefix="fork-check-") as scratch:
        template = Template(template_url(answers), Path(scratch))
        return set(template.render(answers["_commit"], answers, "fresh").files)


def main(argv: list[str]) -> int:
    os.chdir(Path(__file__).resolve().parents[2])  # the fork's root
    return check(argv or own_modules(rendered_files()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
