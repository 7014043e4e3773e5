"""The template this fork follows: where it lives, one clone of it with its releases and renders of any of its
commits with the fork's answers, and the commit an update goes to. template_sync.py, template_upstream.py and
fork_check.py work from it."""

import re
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import copier
import yaml
from packaging.version import InvalidVersion, Version

from core.update.template_merge import ANSWERS, Render, git
from core.update.template_transaction import too_full


def say(message: str) -> None:
    print(message, file=sys.stderr)


def fail(message: str) -> NoReturn:
    say(message)
    sys.exit(1)


def read_answers() -> dict:
    return yaml.safe_load(Path(ANSWERS).read_text())


def template_url(answers: dict) -> str:
    """Where the template lives, from _src_path. A path that cannot work here stops with what to do instead."""
    source = str(answers.get("_src_path", ""))
    if source.startswith(("gh:", "gl:")):  # copier's shorthands
        return f"https://{'github.com' if source.startswith('gh:') else 'gitlab.com'}/{source[3:].strip('/')}"
    if "://" in source or re.match(r"^[\w.-]+@[\w.-]+:", source):
        # copier's rule for telling a git URL
        if not source.endswith(".git") and not source.startswith(("git+", "git@", "https://github.com/",
                                                                  "https://gitlab.com/")):
            fail(f"copier does not take _src_path: {source} in {ANSWERS} for a git repository: end it with .git, or "
                 "start it with git+, then commit and run this again.")
        return source.removeprefix("git+")
    path = Path(source)
    if path.is_absolute() and path.exists():
        return source
    why = ("copier resolves a relative path from wherever it runs" if not path.is_absolute() else
           "there is no template there on this machine (and never is on GitHub's runners)")
    fail(f"This fork follows the template at '{source}', a path on the machine that rendered it: {why}.\n"
         f"Point the fork at the template's git URL instead: in {ANSWERS}, set\n"
         "  _src_path: https://github.com/OWNER/TEMPLATE.git\n"
         "(gh:OWNER/TEMPLATE works too), commit it, and run this again. That repository needs the template's\n"
         "release tags (git push --follow-tags).")


class Template:
    """One clone of the template: its releases, and renders of any of its commits with a fork's answers."""

    def __init__(self, url: str, scratch: Path):
        self.url, self.repo, self.scratch = url, scratch / "template", scratch
        cloned = subprocess.run(["git", "clone", "--quiet", "--no-checkout", url, str(self.repo)],
                                capture_output=True, text=True)
        if cloned.returncode and (full := too_full(scratch)):
            fail(f"Could not fetch the template from {url}: {full}. Free some space, and run this again.")
        if cloned.returncode:
            fail(f"Could not fetch the template from {url} (git: {cloned.stderr.strip()}). Check that you can reach it "
                 f"(git ls-remote {url}), or point _src_path in {ANSWERS} at where it is now, commit, and run this "
                 "again.")

    def git(self, *args: str) -> str:
        return git(*args, cwd=self.repo)

    def releases(self, *where: str) -> dict[str, Version]:
        """The release tags (of the commit where names, if given), by copier's rule: PEP 440 versions that are not
        pre-releases."""
        releases = {}
        for tag in self.git("tag", "--list", *where).split():
            try:
                releases[tag] = Version(tag)
            except InvalidVersion:
                continue
        return {tag: version for tag, version in releases.items() if not version.is_prerelease}

    def newest_release(self) -> str | None:
        releases = self.releases()
        return max(releases, key=releases.get, default=None)

    def commit(self, ref: str) -> str | None:
        """The commit ref names (a tag, a hash, or copier's `v1.0.0-3-gabc1234`), or None."""
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                               cwd=self.repo, capture_output=True, text=True)
        return found.stdout.strip() or None

    def is_ancestor(self, older: str, newer: str) -> bool:
        return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=self.repo).returncode == 0

    def name(self, commit: str) -> str:
        """The newest release tag on this commit, else what copier records as _commit for it (git describe, which
        may pick the older of two tags on one commit)."""
        releases = self.releases("--points-at", commit)
        return max(releases, key=releases.get, default=None) or self.git("describe", "--tags", "--always",
                                                                          commit).strip()

    def release_commit(self, tag: str) -> str | None:
        """The commit scripts/release made for release tag (vX.Y.Z: "Release X.Y.Z"), or None."""
        subject = f"^Release {re.escape(tag.removeprefix('v'))}$"
        return self.git("log", "--all", "--format=%h", "--extended-regexp", f"--grep={subject}").split("\n")[0] or None

    def config(self, ref: str) -> dict:
        "The template's copier.yml at ref."
        return yaml.safe_load(self.git("show", f"{self.commit(ref)}:copier.yml"))

    def render(self, ref: str, answers: dict, name: str) -> "Render":
        dst = self.scratch / name
        copier.run_copy(str(self.repo), dst, data={k: v for k, v in answers.items() if not k.startswith("_")},
                        vcs_ref=self.commit(ref), defaults=True, quiet=True, overwrite=True)
        return Render(dst, self.config(ref).get("_skip_if_exists", []))


def recorded_commit(template: Template, answers: dict) -> str:
    """The template commit this fork records (_commit); when the template lacks it, stops with why and what to do."""
    recorded = answers["_commit"]
    if current := template.commit(recorded):
        return current
    if release := template.release_commit(recorded):
        push = "" if Path(template.url).is_absolute() else " and git push --tags"
        fail(f"The template at {template.url} has no tag {recorded}, the release {ANSWERS} records, though it has "
             f"that release's commit, {release}: its tags were left out (a clone or mirror made without them). In the "
             f"template's repository, scripts/release --restore-tags{push} tags its releases again; then run this "
             "again.")
    if re.fullmatch(r"v?\d+(\.\d+)*", recorded):  # a release tag
        fail(f"The template at {template.url} has neither the tag {recorded}, the release {ANSWERS} records, nor its "
             f"Release commit: _src_path in {ANSWERS} points at another repository, or at one without the template's "
             "history. Point it at the repository this fork was rendered from, commit, and run this again.")
    fail(f"The template at {template.url} has no commit {recorded}, the one {ANSWERS} records: copier records such a "
         "commit when it renders uncommitted template changes. Set _commit to the release the fork was rendered from, "
         "commit, and run this again.")


def choose_target(template: Template, answers: dict, requested: str | None, answers_change: bool) -> str | None:
    """The template commit to update to, or None when there is nothing to do; says which and why."""
    recorded = answers["_commit"]
    current = recorded_commit(template, answers)
    newest = template.newest_release()
    if requested:
        target = current if requested == ":current:" else template.commit(requested)
        if not target:
            fail(f"The template at {template.url} has no tag or commit {requested}: pass one it has with --vcs-ref "
                 f"(its releases: {', '.join(sorted(template.releases(), key=Version)) or 'none yet'}).")
    elif newest:
        target = template.commit(newest)
    else:
        target = template.commit("HEAD")
        say("The template has no release yet (no version tag): following its newest commit.")
    if target != current and template.is_ancestor(current, target):
        say(f"Updating from template {recorded} to {template.name(target)}.")
        return target
    if target != current and (requested or not template.is_ancestor(target, current)):
        fail(f"Template {requested or newest} is not newer than {recorded}, the version this fork is on: copier "
             "cannot go back. Pass a newer one with --vcs-ref.")
    if answers_change:
        say(f"Changing answers at template {recorded}, this fork's version.")
        return current
    if target == current and requested:
        say(f"Nothing new: this fork is on {requested} already ({recorded}).")
    elif target == current and newest:
        say(f"Nothing new: this fork is on template {newest}, the newest release"
            f"{'' if recorded == newest else f' ({ANSWERS} names the same commit {recorded})'}.")
    elif not newest:
        say(f"Nothing new: the template has no release yet, and this fork is on its newest commit ({recorded}).")
    else:
        hint = ("" if template.commit("HEAD") == current else
                " (./run update --vcs-ref=HEAD takes the template's newest commit now)")
        say(f"Nothing new: this fork is on template {recorded}, a commit after the newest release, {newest}. "
            f"The next release will update it{hint}.")
    return None
