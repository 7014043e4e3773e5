"""Copier answers are data in every language they land in (copier.yml, "Answers are data"): a text answer with a
control character is refused in one line; any other lands in every rendered file as itself, which each file's own
parser reads back, and none of its code ever runs. Names in any script work everywhere.

Hypothesis draws the answers (few examples: each is a render of a whole fork), with shell, Python, TOML, Nix, YAML,
JSON, Markdown, HTML and Jinja payloads among them. A payload that ran would leave its marker file behind."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from template_tools import FLAVOURS, ROOT, git, render

NIX = ROOT / "scripts" / "nix"
MARKER = Path(tempfile.gettempdir()) / "copier-answer-ran"  # what every payload would create
REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # as copier.yml's validators
TEXT_ANSWERS = ["project_name", "description", "author_name"]
PAYLOADS = [
    f"$(touch {MARKER})", f"`touch {MARKER}`", f"${{builtins.readFile {MARKER}}}", f"'; touch {MARKER}; '",
    f'"""; __import__("pathlib").Path("{MARKER}").touch(); """', f'"; touch {MARKER}; "', "{{ 7 * 7 }}",
    "{% raw %}", "\\", "\\\\n", '"', "'", "'''", "${x}", "$$", "#", "<script>alert(1)</script>", "&amp;", "*a* _b_ [c](d)",
    "# h", "- ", "1. ", "```", "key: value", "- [x]", "{", "}]", "Rocket 🚀", "Café", "שלום עולם", "مرحبا", "👩‍💻",
    "\ufeff", "\uffff", "\U0010ffff", "\u00a0", "\u200f",
]
printable = st.characters(codec="utf-8").filter(lambda char: not REFUSED.match(char))
text = st.lists(st.sampled_from(PAYLOADS) | st.text(printable, max_size=8), max_size=5).map("".join)
emails = st.sampled_from(["", "ada@example.com", "jörg.müller+seo@exämple.de"])
examples = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    "The template as it is now, as a folder without git: copier renders it in place, with no clone per example."
    copy = tmp_path_factory.mktemp("template")
    for name in git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        if name and (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


def render_answers(template: Path, answers: dict) -> Path:
    return render(Path(tempfile.mkdtemp(prefix="answers-")) / "fork", src=template, vcs_ref=None, **answers)


def markdown_text(inline) -> str:
    "What a Markdown line shows; fails if any of it is markup (a link, emphasis, code, HTML, a line break)."
    assert {child.type for child in inline.children} <= {"text", "text_special"}, inline.children
    return "".join(child.content for child in inline.children)


def assert_lands_as_itself(fork: Path, answers: dict):
    "Every file parses with its own parser, and gives each answer back exactly."
    subprocess.run(["bash", "-n", fork / "run"], check=True)
    for path in fork.rglob("*"):
        if path.suffix == ".py":
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        elif path.suffix in (".json", ".ipynb"):
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".yml", ".yaml"):
            yaml.safe_load(path.read_text(encoding="utf-8"))
    project = tomllib.loads((fork / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["description"] == answers["description"]
    assert project.get("authors", [{}])[0].get("name", "") == answers["author_name"]
    recorded = yaml.safe_load((fork / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert {name: recorded[name] for name in TEXT_ANSWERS} == {name: answers[name] for name in TEXT_ANSWERS}
    tokens = MarkdownIt().parse((fork / "README.md").read_text(encoding="utf-8"))
    assert markdown_text(tokens[1]) == answers["project_name"].strip()
    if answers["description"].strip():
        assert markdown_text(tokens[4]) == answers["description"].strip()
    if (fork / "core/config.py").exists():  # the app's settings, imported as the app imports them
        shown = subprocess.run([sys.executable, "-c", "import json; from core import config; print(json.dumps(config.SETTINGS))"],
                               cwd=fork, capture_output=True, encoding="utf-8", check=True).stdout
        settings_ = json.loads(shown)
        assert (settings_["name"], settings_["description"]) == (answers["project_name"], answers["description"])
    nix = subprocess.run([NIX, "eval", "--raw", "--file", fork / "flake.nix", "description"], capture_output=True,
                         env=os.environ | {"NIX_CONFIG": "experimental-features = nix-command"}, encoding="utf-8")
    if nix.returncode != 127:  # 127: scripts/nix is not installed here; tests/test_flakes.py says so
        assert nix.stdout == answers["description"], nix.stderr
    usage = subprocess.run([fork / "run", "--help"], capture_output=True, encoding="utf-8", check=True).stdout
    assert "setup" in usage


@examples
@given(flavour=st.sampled_from(FLAVOURS), name=text.filter(str.strip), description=text, author=text, email=emails)
@example(flavour="pipulate", name='Shop"""; __import__("os").system("touch ' + str(MARKER) + '"); """',
         description='Rocket 🚀 "quoted" ${x} $(touch ' + str(MARKER) + ')', author="O'Brien \\", email="")
@example(flavour="botifython", name="Rocket 🚀", description="‏שלום {{ 7 * 7 }} {% raw %}", author="Zoë", email="z@x.io")
@example(flavour="darwinix", name="$(touch " + str(MARKER) + ")", description="`x` <b>x</b> \\${x}", author="",
         email="")
def test_a_printable_answer_lands_as_data_in_every_file(template, flavour, name, description, author, email):
    answers = {"project_name": name, "description": description, "author_name": author, "author_email": email}
    fork = render_answers(template, {"flavour": flavour, **answers})
    try:
        assert_lands_as_itself(fork, answers)
        assert not MARKER.exists()
    finally:
        shutil.rmtree(fork.parent)


@examples
@given(question=st.sampled_from(TEXT_ANSWERS), before=text, control=st.from_regex(REFUSED, fullmatch=True),
       after=text)
@example(question="project_name", before="Shop", control="\n", after=f"touch {MARKER} #")
@example(question="description", before="", control="\x1b", after="[31mred")
@example(question="author_name", before="Ada", control="\u202e", after="gnp.exe")
def test_a_text_answer_with_a_control_character_is_refused_in_one_line(template, question, before, control, after):
    destination = Path(tempfile.mkdtemp(prefix="answers-")) / "fork"
    try:
        with pytest.raises(ValueError) as refusal:
            render(destination, src=template, vcs_ref=None, **{"project_name": "Shop", question: before + control + after})
        message = str(refusal.value)
        assert message.startswith(f"Validation error for question '{question}': ") and "one line" in message
        assert "\n" not in message and "\x1b" not in message
        assert not destination.exists()
    finally:
        shutil.rmtree(destination.parent)


@pytest.mark.parametrize("answer, message", [
    ("project_slug=shop\n", "must start with a letter"),
    ("ollama_model=llama3.2\n", "is not an Ollama model name"),
    ("author_email=a@b.co\n", "is not an e-mail address"),
    ("author_email=\"a\"@b.co", "is not an e-mail address"),
])
def test_a_pattern_checked_answer_with_a_trailing_line_break_is_refused(answer, message, template, tmp_path):
    name, value = answer.split("=", 1)
    with pytest.raises(ValueError, match=message):
        render(tmp_path / "fork", src=template, vcs_ref=None, **{name: value})


def test_a_name_without_latin_letters_gets_the_flavour_as_its_slug(template, tmp_path):
    fork = render(tmp_path / "fork", src=template, vcs_ref=None, project_name="שלום 🚀")
    assert yaml.safe_load((fork / ".copier-answers.yml").read_text())["project_slug"] == "pipulate"
