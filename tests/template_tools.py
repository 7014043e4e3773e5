"""Helpers shared by the template's tests and scripts: the flavour matrix and rendering."""

import subprocess
import tomllib
from pathlib import Path

import copier
import yaml

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text())
FLAVOURS = QUESTIONS["flavour"]["choices"]


def render(dst: Path, src: Path = ROOT, vcs_ref: str = "HEAD", **answers) -> Path:
    """Render a fork into dst through copier's API, taking defaults for every unanswered question."""
    copier.run_copy(str(src), dst, data=answers, defaults=True, vcs_ref=vcs_ref, quiet=True)
    return dst


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def flavour_requirements() -> set[str]:
    """Every requirement any flavour declares, test extras included (scripts/lock pins these)."""
    import tempfile

    requirements = set()
    for flavour in FLAVOURS:
        with tempfile.TemporaryDirectory() as tmp:
            project = tomllib.loads((render(Path(tmp), flavour=flavour) / "pyproject.toml").read_text())["project"]
            requirements.update(project["dependencies"])
            for extra in project.get("optional-dependencies", {}).values():
                requirements.update(extra)
    return requirements
