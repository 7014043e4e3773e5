"""copier.yml renders every flavour with the right files, and bad answers fail before anything is written."""

import os
import re
import subprocess
import sys
import tomllib

import pytest
from copier.errors import CopierAnswersInterrupt

from template_tools import FLAVOURS, QUESTIONS, ROOT, render

EVERY_FORK_HAS = {
    ".copier-answers.yml", ".gitignore", ".pre-commit-config.yaml", ".github/workflows/ci.yml", "LICENSE",
    "README.md", "flake.nix", "local.nix", "pyproject.toml", "requirements.lock", "requirements-local.txt", "run",
}
SERVER_FILES = {"server.py", "core/config.py", "settings.toml", "prompts/system.md", "notebooks/app_data.ipynb"}
DATA_STACK_FILES = {"notebooks/data_starter.ipynb", "tests/test_data_stack.py"}


def rendered_files(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def test_flavour_matrix_comes_from_copier_yml():
    assert FLAVOURS == ["darwinix", "pipulate", "botifython"]
    assert QUESTIONS["flavour"]["default"] == "pipulate"


def test_every_question_has_help():
    questions = {name: q for name, q in QUESTIONS.items() if not name.startswith("_")}
    asked = [name for name, q in questions.items() if q.get("when") is not False]
    assert [name for name in asked if not questions[name].get("help")] == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_flavour_renders_its_files(flavour, tmp_path):
    files = rendered_files(render(tmp_path, flavour=flavour))
    assert EVERY_FORK_HAS <= files
    has_server = flavour != "darwinix"
    assert SERVER_FILES <= files if has_server else not SERVER_FILES & files
    assert DATA_STACK_FILES <= files if not has_server else not DATA_STACK_FILES & files
    assert "tests/test_jupyter.py" in files
    assert os.access(tmp_path / "run", os.X_OK)
    assert not {f for f in files if f.startswith(("data/", "logs/", ".venv/"))}


@pytest.mark.parametrize("flavour, name", [("darwinix", "Darwinix"), ("pipulate", "Pipulate"),
                                           ("botifython", "Botifython")])
def test_defaults_derive_from_the_flavour(flavour, name, tmp_path):
    answers = (render(tmp_path, flavour=flavour) / ".copier-answers.yml").read_text()
    assert f"project_name: {name}\n" in answers
    assert f"project_slug: {name.lower()}\n" in answers


def test_slug_is_derived_from_the_name(tmp_path):
    render(tmp_path, project_name="My SEO Bench!")
    assert "project_slug: my-seo-bench\n" in (tmp_path / ".copier-answers.yml").read_text()


def test_darwinix_has_no_server_answers(tmp_path):
    answers = (render(tmp_path, flavour="darwinix") / ".copier-answers.yml").read_text()
    assert "app_port" not in answers and "ollama_model" not in answers


def test_without_jupyter_there_is_no_jupyter(tmp_path):
    files = rendered_files(render(tmp_path, flavour="pipulate", jupyter=False))
    assert not {f for f in files if "jupyter" in f or f.startswith("notebooks/")}
    assert "jupyterlab" not in (tmp_path / "pyproject.toml").read_text()


@pytest.mark.parametrize("answers, message", [
    ({"project_slug": "Bad Slug"}, "must start with a letter"),
    ({"project_slug": "9lives"}, "must start with a letter"),
    ({"app_port": 80}, "between 1024 and 65535, not 80"),
    ({"app_port": 70000}, "between 1024 and 65535, not 70000"),
    ({"jupyter_port": 80}, "between 1024 and 65535, not 80"),
    ({"jupyter_port": 5001}, "cannot be the app port"),
    ({"flavour": "unknown"}, "unknown"),
    ({"ollama_model": "Bad Model!"}, "is not an Ollama model name"),
    ({"author_email": "nobody"}, "is not an e-mail address"),
    ({"flavour": "darwinix", "jupyter": False}, "darwinix is JupyterLab: it cannot go without it."),
    ({"python_version": "3.9"}, "3.9"),
])
def test_bad_answer_fails_with_its_message_and_writes_nothing(answers, message, tmp_path):
    dst = tmp_path / "fork"
    with pytest.raises((ValueError, CopierAnswersInterrupt)) as error:
        render(dst, **answers)
    assert message in str(error.value)
    assert not dst.exists() or not any(dst.iterdir())


def test_copier_cli_copies_without_trust(tmp_path):
    dst = tmp_path / "fork"
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--vcs-ref=HEAD", "-d", "flavour=botifython",
         str(ROOT), str(dst)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (f"Botifython is rendered in {dst}: nothing is set up or started yet. Next:\n"
            f"  cd {dst}\n"
            '  git init && git add --all && git commit -m "Render botifython"') in result.stderr
    assert "  ./run   # sets up .venv, starts the app and JupyterLab and says where" in result.stderr
    assert (dst / "server.py").exists()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_declared_dependency_is_pinned_in_the_lock(flavour, tmp_path):
    """scripts/lock must have been re-run after a dependency was added: ./run installs with the lock as constraints."""
    fork = render(tmp_path, flavour=flavour)
    project = tomllib.loads((fork / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    pinned = {line.split("==")[0].lower() for line in (fork / "requirements.lock").read_text().splitlines()
              if "==" in line}
    assert {re.split(r"[<>=!~\[ ;]", r)[0].lower() for r in declared} - pinned == set()
