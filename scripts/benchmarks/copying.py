"""Copier: the template against a one-file template, both with releases OLD and NEW (one upstream change)."""

import shutil
import sys
from pathlib import Path

import copier
from template_tools import FLAVOURS, commit_all, git, render

from .measuring import Row, Scratch, pairs, ratio_row, seconds, timed
from .plan import Plan

OLD, NEW = "v1.0.0", "v1.0.1"  # the template releases a fork is updated between

# The baseline template: copier.yml, one file, and the answers file that `copier update` needs.
ONE_FILE_TEMPLATE = {
    "copier.yml": "project_name:\n  type: str\n  default: Demo\n",
    "README.md.jinja": "# {{ project_name }}\n",
    "{{_copier_conf.answers_file}}.jinja": "{{ _copier_answers | to_nice_yaml }}",
}
ONE_FILE = ("a one-file copier template: not a peer, a floor that no template with files to render and merge "
            "reaches, so no target")


def with_upstream_change(repo: Path, readme: Path) -> Path:
    "Tags the repository OLD, appends a line to its README template and tags that NEW."
    git(repo, "tag", OLD)
    readme.write_text(readme.read_text() + "\nOne upstream change.\n")
    commit_all(repo, "One upstream change")
    git(repo, "tag", NEW)
    return repo


def one_file_template(repo: Path) -> Path:
    for name, text in ONE_FILE_TEMPLATE.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    commit_all(repo, "One-file template")
    return with_upstream_change(repo, repo / "README.md.jinja")


def copy_time(fresh: Scratch, src: Path, **answers) -> float:
    dst = fresh("copy")
    took = timed(render, dst, src=src, vcs_ref=NEW, **answers)
    shutil.rmtree(dst)
    return took


def update_time(fresh: Scratch, src: Path, **answers) -> float:
    fork = render(fresh("update"), src=src, vcs_ref=OLD, **answers)
    commit_all(fork, "A fork")
    took = timed(copier.run_update, fork, vcs_ref=NEW, defaults=True, overwrite=True, conflict="inline", quiet=True)
    if "One upstream change." not in (fork / "README.md").read_text(): raise RuntimeError(f"{fork} was not updated")
    shutil.rmtree(fork)
    return took


def copier_rows(plan: Plan, fresh: Scratch, template: Path) -> list[Row]:
    one_file = one_file_template(fresh("one-file"))
    rows = []
    for flavour in FLAVOURS:
        for command, measure in (("copy", copy_time), ("update", update_time)):
            print(f"copier {command}, {flavour} ...", file=sys.stderr)
            base, subject = pairs(lambda: measure(fresh, one_file), lambda: measure(fresh, template, flavour=flavour),
                                  plan.runs, plan.warmups)
            figure = f"`copier {command}`{' with one upstream change' if command == 'update' else ''}, {flavour}"
            rows.append(ratio_row(figure, ONE_FILE, base, subject, seconds, "—", None))
    return rows
