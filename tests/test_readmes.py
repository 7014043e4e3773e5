"""Every README a newcomer follows is sound Markdown and shows only what is real: each fork's (every flavour, with
and without JupyterLab) and the template's own. Its code fences close, its headings are unique and start lines of
their own, and every command it shows exists: each `./run X` is a command of that fork's ./run (whose --help names
exactly those), each `scripts/X` a script here, each environment variable one the project reads."""

import re
import subprocess

import jinja2
import pytest
from markdown_it import MarkdownIt

from template_tools import FLAVOURS, QUESTIONS, ROOT, render

# Every flavour with JupyterLab, and without it where copier.yml asks (its `when`).
ASKS_JUPYTER = jinja2.Template(QUESTIONS["jupyter"]["when"])
VARIANTS = [(flavour, True) for flavour in FLAVOURS] + [
    (flavour, False) for flavour in FLAVOURS if ASKS_JUPYTER.render(flavour=flavour) == "True"]
ENV_NAME = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*"
READS_ENV = [re.compile(rf"environ(?:\.get\(|\[)\s*[\"']({ENV_NAME})[\"']"),  # Python: os.environ.get / os.environ[]
             re.compile(rf"getenv\(\s*[\"']({ENV_NAME})[\"']"),
             re.compile(rf"\$\{{?({ENV_NAME})\b")]  # shell and Nix strings: $NAME, ${NAME...}
SHELL_LIKE = {"bash", "sh", "text", ""}  # fences whose NAME=value lines set the environment (not Python's)


def markdown_problems(text: str) -> list[str]:
    """What would make the page render otherwise than written: a fence that swallows another (an unclosed or
    mangled fence, like "```## Next section"), a heading that does not start a line of its own, a heading twice, or
    template syntax left over."""
    lines, problems, headings = text.splitlines(), [], []
    for token, following in zip(tokens := MarkdownIt().parse(text), [*tokens[1:], None]):
        if token.type == "fence":
            problems += [f"line {token.map[0] + 1}: a fence inside a fence: {line!r}"
                         for line in token.content.splitlines() if line.lstrip().startswith(token.markup)]
            closing = lines[token.map[1] - 1].strip() if token.map[1] <= len(lines) else ""
            if token.map[1] - token.map[0] < 2 or not re.fullmatch(re.escape(token.markup[0]) + "{3,}", closing):
                problems.append(f"line {token.map[0] + 1}: a code fence that never closes")
        if token.type == "heading_open":
            headings.append(following.content)
            if token.map[0] > 0 and lines[token.map[0] - 1].strip():
                problems.append(f"line {token.map[0] + 1}: the heading {following.content!r} follows text directly")
    problems += [f"the heading {heading!r} twice" for heading in sorted({h for h in headings if headings.count(h) > 1})]
    problems += [f"template syntax left: {line!r}" for line in lines if "{{" in line or "{%" in line]
    return problems


def code(text: str) -> list[tuple[str, str]]:
    "Every code span and fenced block of a Markdown text, as (language, code): inline spans have the language ''."
    found = []
    for token in MarkdownIt().parse(text):
        if token.type == "fence":
            found.append((token.info.strip(), token.content))
        for child in token.children or []:
            if child.type == "code_inline":
                found.append(("", child.content))
    return found


def environment_variables_named(text: str, files: set[str]) -> set[str]:
    "The variables a text sets (NAME=value in shell code) or names (a code span that is just NAME, not a file)."
    named = set()
    for language, snippet in code(text):
        if language in SHELL_LIKE:
            named |= set(re.findall(rf"(?<![\w.-])({ENV_NAME})=", snippet))
        if re.fullmatch(ENV_NAME, snippet) and snippet not in files:
            named.add(snippet)
    return named


def environment_variables_read(root, paths) -> set[str]:
    read = set()
    for path in paths:
        text = (root / path).read_text(errors="ignore")
        for pattern in READS_ENV:
            read |= set(pattern.findall(text))
    return read


def run_commands_shown(text: str) -> set[str]:
    "Each X of every `./run X` in a text (bare `./run` and `./run --help` are start and help)."
    return set(re.findall(r"(?<![\w/.])\./run[ \t]+([a-z][\w-]*)", text))


def commands_taken(fork) -> set[str]:
    "The commands the fork's ./run takes: the arms of its case."
    arms = re.search(r'\ncase "\$command" in\n(.*?)\nesac', (fork / "run").read_text(), re.S)[1]
    return {name for arm in re.findall(r"^ {4}([\w|-]+)\)", arms, re.M) for name in arm.split("|")} - {"-h", "--help"}


def run_help(fork) -> str:
    return subprocess.run([str(fork / "run"), "--help"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module", params=VARIANTS, ids=[f"{f}-{'jupyter' if j else 'no-jupyter'}" for f, j in VARIANTS])
def fork(request, tmp_path_factory):
    flavour, jupyter = request.param
    root = render(tmp_path_factory.mktemp(flavour), flavour=flavour, jupyter=jupyter)
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    return root, files


def test_fork_readme_is_sound_markdown(fork):
    root, _ = fork
    assert markdown_problems((root / "README.md").read_text()) == []


def test_fork_readme_shows_only_commands_its_run_has(fork):
    root, _ = fork
    taken = commands_taken(root)
    assert set(re.findall(r"^  ([a-z]\w*)", run_help(root), re.M)) == taken, "./run --help lists other commands"
    assert run_commands_shown((root / "README.md").read_text()) - taken == set()


def test_fork_readme_and_run_help_name_only_variables_the_fork_reads(fork):
    root, files = fork
    read = environment_variables_read(root, [f for f in files if f.endswith(".py") or f in ("run", "flake.nix")])
    listed = set(re.findall(rf"(?<![\w.])({ENV_NAME})(?![\w.])", run_help(root).split("Environment:", 1)[1]))
    assert (environment_variables_named((root / "README.md").read_text(), files) | listed) - read == set()


def test_fork_readme_runs_only_scripts_the_fork_has(fork):
    root, files = fork
    scripts = set(re.findall(r"\.venv/bin/python\s+([\w/.-]+\.py)", (root / "README.md").read_text()))
    assert scripts - files == set()


def test_template_readme_is_sound_markdown():
    assert markdown_problems((ROOT / "README.md").read_text()) == []


def test_template_readme_shows_only_real_commands_and_variables(tmp_path):
    readme = (ROOT / "README.md").read_text()
    fork = render(tmp_path / "fork", flavour="botifython")
    assert run_commands_shown(readme) - commands_taken(fork) == set()
    shown = set(re.findall(r"(?<![\w/.])scripts/([\w-]+)(/?)", readme))  # a command, or a folder/
    assert {name for name, folder in shown if not (ROOT / "scripts" / name).is_file()
            and not (folder and (ROOT / "scripts" / name).is_dir())} == set()
    files = {p.name for p in ROOT.iterdir()} | {p.relative_to(fork).as_posix() for p in fork.rglob("*")}
    read = environment_variables_read(ROOT, [p for p in ROOT.glob("scripts/*") if p.is_file()])
    assert environment_variables_named(readme, files) - read == set()
