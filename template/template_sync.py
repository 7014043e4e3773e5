"""Keeps this fork in step with the template it was rendered from: `./run update` and `./run drift` run this.

Template-owned: `copier update` keeps it current. Copier merges the template's changes into the files the template
owns and leaves yours alone, but it is silent where a change of yours meets one of the template's: it exits 0 on a
conflict, drops your version of a file the new release deletes or renames, and skips the template's change to a
file you deleted. This script names each such file and keeps your version where you will find it. It compares
fresh renders of template releases, made with this fork's answers from one clone of the template.
"""

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import copier
import yaml
from packaging.version import InvalidVersion, Version
from pathspec import PathSpec

import fork_check

ANSWERS = ".copier-answers.yml"
# copier's own conflict labels, so a conflict reads the same whoever made it (and pre-commit's check finds it).
LABELS = ["-L", "before updating", "-L", "last update", "-L", "after updating"]


def say(message: str) -> None:
    print(message, file=sys.stderr)


def fail(message: str) -> NoReturn:
    say(message)
    sys.exit(1)


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True).stdout.decode()


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
        if cloned.returncode:
            fail(f"Could not fetch the template from {url}:\n{cloned.stderr.strip()}")

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


class Render:
    """A fresh render of the template: its files, and which of them are template-owned."""

    def __init__(self, root: Path, skip_if_exists: list[str]):
        self.root = root
        self.forks = PathSpec.from_lines("gitignore", skip_if_exists)
        self.files = {path.relative_to(root).as_posix(): path.read_bytes()
                      for path in sorted(root.rglob("*")) if path.is_file()}
        self.files.pop(ANSWERS, None)  # the render's own record, not the fork's

    def template_owned(self, path: str) -> bool:
        return path in self.files and not self.forks.match_file(path)

    def lines(self, path: str) -> set[str]:
        return set(self.files[path].decode(errors="replace").splitlines()) if self.template_owned(path) else set()


def renames(old: Render, new: Render) -> dict[str, str]:
    """Old path -> new path for every file the new render has under another name (git's rename detection)."""
    listing = subprocess.run(["git", "diff", "--no-index", "--find-renames", "--name-status", "-z",
                              old.root.name, new.root.name], cwd=old.root.parent, capture_output=True, text=True)
    fields, moved = listing.stdout.split("\0"), {}
    while len(fields) > 1:
        status, *fields = fields
        if status.startswith("R"):
            (source, target), fields = fields[:2], fields[2:]
            moved[source.split("/", 1)[1]] = target.split("/", 1)[1]
        else:
            fields = fields[1:]
    return moved


def blob(content: bytes) -> str:
    return git("hash-object", "-w", "--stdin", input=content).strip()


def mark_conflict(path: str, base: bytes, ours: bytes, theirs: bytes | None = None) -> None:
    """Records path as unmerged, as a git merge does (stage 1 the base, 2 ours, 3 theirs): git status lists it, and
    git commit refuses it until it is resolved with git add or git rm."""
    mode = "100755" if os.access(path, os.X_OK) else "100644"
    blobs = {stage: blob(content) for stage, content in enumerate((base, ours, theirs), 1) if content is not None}
    unstaged = f"0 {'0' * len(blobs[1])}\t{path}"  # drops the path's stage 0 entry
    stages = [f"{mode} {sha} {stage}\t{path}" for stage, sha in blobs.items()]
    git("update-index", "--index-info", input="\n".join([unstaged, *stages, ""]).encode())


def merge(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, int] | None:
    """A 3-way merge with conflict blocks where both sides changed the same lines: (result, conflicts), or None
    for files git cannot merge (binary ones)."""
    with tempfile.TemporaryDirectory() as scratch:
        sides = [Path(scratch, name) for name in ("ours", "base", "theirs")]
        for side, content in zip(sides, (ours, base, theirs)):
            side.write_bytes(content)
        merged = subprocess.run(["git", "merge-file", "-p", *LABELS, *map(str, sides)], capture_output=True)
    return None if merged.returncode > 127 else (merged.stdout, merged.returncode)


def keep_fork_versions(old: Render, new: Render, moved: dict[str, str],
                       mine: dict[str, bytes | None]) -> dict[str, str]:
    """Every file the fork changed that the new render deletes or renames (copier drops those changes) comes back
    as a conflict to resolve: a renamed one merged into its new name, a deleted one (or a renamed one git cannot
    merge) as it was. Returns, for each conflict, what happened to it."""
    kept = {}
    for path, content in mine.items():
        if content is None or content == old.files[path] or path in new.files:
            continue
        target = moved.get(path)
        theirs = Path(target).read_bytes() if target and Path(target).is_file() else None
        merged = merge(content, old.files[path], theirs) if theirs is not None else None
        if merged:
            Path(target).write_bytes(merged[0])
            mark_conflict(target, old.files[path], content, theirs)
            blocks = f" with {merged[1]} conflict block(s) to resolve" if merged[1] else ""
            kept[target] = (f"{path} -> {target}: renamed by the template; your changes are merged into {target}"
                            f"{blocks}. Check it, then git add {target}.")
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(content)
            mark_conflict(path, old.files[path], content)
            what = f"renamed to {target}" if target else "deleted"
            kept[path] = (f"{path}: {what} by the template; your version is kept here. git rm {path} to follow the "
                          f"template, or git add {path} to keep it as a file of your own.")
    return kept


def skipped_template_changes(old: Render, new: Render, moved: dict[str, str], mine: dict[str, bytes | None],
                             tracked: set[str]) -> list[str]:
    """Template-owned files the fork deleted stay deleted, under a new name too; returns those the template changed
    or renamed, whose change is therefore not applied."""
    skipped = []
    for path, content in mine.items():
        if content is not None or not old.template_owned(path):
            continue  # a deleted file of the fork's own comes back on purpose: README.md, "What you may edit"
        target = moved.get(path)
        if target and target not in tracked:
            Path(target).unlink(missing_ok=True)
            skipped.append(f"{path} (renamed to {target}, which is left out too)")
        elif new.files.get(path, old.files[path]) != old.files[path]:
            skipped.append(path)
    return skipped


def shown_answers(answers: dict) -> dict:
    "The answers a file can show as text: not copier's own records (_commit...), yes/no ones or empty ones."
    return {name: value for name, value in answers.items()
            if not name.startswith("_") and not isinstance(value, bool) and str(value)}


def whole_value(value) -> re.Pattern:
    "An answer's value as a whole in a text: 5001 but not 15001, 3.12 in python3.12 too, pipulate but not pipulated."
    before_it, after_it = (r"[\d.]", r"\d") if str(value)[0].isdigit() else (r"\w", r"\w")
    return re.compile(rf"(?<!{before_it}){re.escape(str(value))}(?!{after_it})")


def mentions_of_old_answers(before: dict, after: dict, new: Render) -> list[str]:
    """Lines outside the template's own text that still carry an answer's old value."""
    report = []
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name, old in shown_answers(before).items():
        if after.get(name) == old:
            continue
        pattern = whole_value(old)
        hits = []
        for path in files:
            if path in ("", ANSWERS) or not Path(path).is_file():
                continue
            try:
                text = Path(path).read_text()
            except UnicodeDecodeError:
                continue
            templates = new.lines(path)
            hits += [f"  {path}:{number}: {line.strip()[:100]}" for number, line in enumerate(text.splitlines(), 1)
                     if line not in templates and pattern.search(line)]
        if hits:
            report += [f"These lines of yours still have the old {name}, {old!r} (the template's files are updated, "
                       "yours are not):", *hits]
    if before.get("python_version") != after.get("python_version") and \
            f"{sys.version_info.major}.{sys.version_info.minor}" != after.get("python_version"):
        report.append(f".venv still runs Python {sys.version_info.major}.{sys.version_info.minor}: rebuild it with "
                      "rm -rf .venv && ./run setup (which uses the new version where it is installed).")
    return report


def choose_target(template: Template, answers: dict, requested: str | None, answers_change: bool) -> str | None:
    """The template commit to update to, or None when there is nothing to do; says which and why."""
    recorded = answers["_commit"]
    current = template.commit(recorded)
    if not current and (release := template.release_commit(recorded)):
        push = "" if Path(template.url).is_absolute() else " and git push --tags"
        fail(f"The template at {template.url} has no tag {recorded}, the release {ANSWERS} records, though it has "
             f"that release's commit, {release}: its tags were left out (a clone or mirror made without them). In the "
             f"template's repository, scripts/release --restore-tags{push} tags its releases again; then run this "
             "again.")
    if not current:
        fail(f"The template at {template.url} has no commit {recorded}, the one {ANSWERS} records (was the fork "
             "rendered from uncommitted template changes?). Set _commit to the release it was rendered from, commit, "
             "and run this again.")
    newest = template.newest_release()
    if requested:
        target = current if requested == ":current:" else template.commit(requested)
        if not target:
            fail(f"The template has no {requested}.")
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


def copier_update(*args: str) -> int:
    """copier update, its messages passed on as they come, except that an answer its validator refuses (-d
    app_port=80, say) is the validator's message, not copier's traceback."""
    copier = subprocess.Popen([sys.executable, "-m", "copier", "update", "--defaults", "--conflict", "inline", *args],
                              stderr=subprocess.PIPE, text=True)
    traceback = []
    for line in copier.stderr:
        if traceback or line.startswith("Traceback (most recent call last):"): traceback.append(line)
        else: sys.stderr.write(line)
    if traceback and traceback[-1].startswith("ValueError: Validation error for question"):
        say(traceback[-1].removeprefix("ValueError: ").rstrip() + " Nothing was changed.")
    elif traceback:
        say("".join(traceback).rstrip())
    return copier.wait()


def update(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./run update", allow_abbrev=False, description=(
        "Merges the template's newest release into this fork, then runs its tests. Other options go to copier update."))
    parser.add_argument("--no-test", action="store_true", help="merge only: run ./run test yourself before committing")
    parser.add_argument("-r", "--vcs-ref", help="the template tag or commit to update to (default: the newest release; "
                                                ":current: keeps this fork's version, to change answers)")
    parser.add_argument("-d", "--data", action="append", default=[], metavar="NAME=VALUE", help="change an answer")
    parser.add_argument("--data-file", help="change answers from a YAML file")
    options, copier_args = parser.parse_known_args(argv)
    copier_args += [f"--data={data}" for data in options.data]
    copier_args += [f"--data-file={options.data_file}"] if options.data_file else []

    if changes := git("status", "--porcelain"):
        fail("Refusing to update: the working tree has uncommitted changes (below). Commit them, or set them aside\n"
             "with git stash push --include-untracked (and bring them back after the update with git stash pop), so\n"
             "that the update's changes can be reviewed, and dropped, on their own.\n" + changes.rstrip())
    before = read_answers()
    with tempfile.TemporaryDirectory(prefix="template-update-") as scratch:
        template = Template(template_url(before), Path(scratch))
        target = choose_target(template, before, options.vcs_ref, bool(options.data or options.data_file))
        if not target:
            return 0
        old = template.render(before["_commit"], before, "old")
        mine = {path: Path(path).read_bytes() if Path(path).is_file() else None for path in old.files}
        tracked = set(git("ls-files", "-z").split("\0"))
        status = copier_update(f"--vcs-ref={target}", *copier_args)
        if status == 4:
            say("This update crosses a template release with a migration, a script from the template that moves or\n"
                f"converts files in this fork: CHANGELOG.md in {template.url} says what it does.\n"
                f"Read it, then run: ./run update --trust {' '.join(argv)}")
        if status:
            return status
        after = read_answers()
        new = template.render(target, after, "new")
        moved = renames(old, new)
        kept = keep_fork_versions(old, new, moved, mine)
        skipped = skipped_template_changes(old, new, moved, mine, tracked)
        leftovers = mentions_of_old_answers(before, after, new)
        own = fork_check.own_modules(new.files)
    return report(after["_commit"], kept, skipped, leftovers, options.no_test, own)


def report(version: str, kept: dict[str, str], skipped: list[str], leftovers: list[str], no_test: bool,
           own: list[str]) -> int:
    if skipped:
        say("You deleted these template files, so this update's changes to them are not applied (./run drift shows "
            "the template's version):")
        say("\n".join(f"  {line}" for line in skipped))
    if leftovers:
        say("\n".join(leftovers))
    if kept:
        say("The template deleted or renamed files you changed. Your versions are kept, as conflicts to resolve:")
        say("\n".join(f"  {line}" for line in kept.values()))
    conflicted = [path for path in git("diff", "--name-only", "--diff-filter=U").splitlines() if path not in kept]
    if conflicted:
        say("The update conflicts with your changes in these files:")
        say("\n".join(f"  {path}" for path in conflicted))
        say("Resolve each '<<<<<<< before updating' ... '>>>>>>> after updating' block, then git add the file.")
    if kept or conflicted:
        say("Then run ./run test and commit. To drop the update instead: git reset --hard && git clean -fd")
        return 1
    # The updated ./run checks, with the updated .venv; before the tests, which may never call what broke.
    if own and subprocess.run(["./run", "check", *own]).returncode:
        say("The update is merged, but your code calls the template in ways it no longer takes (above). Fix them, or "
            "drop the update: git reset --hard && git clean -fd")
        return 1
    if no_test:
        say(f"Merged template {version} without running the tests (--no-test): run ./run test, review with git diff, "
            "then commit.")
        return 0
    # The updated ./run tests, which may set up differently from the one that started this.
    if subprocess.run(["./run", "test"]).returncode:
        say("The update is merged but the tests fail (above). Fix them, or drop the update: "
            "git reset --hard && git clean -fd")
        return 1
    say(f"Updated to template {version}. Nothing is committed: review with git diff, then commit.")
    return 0


def drift() -> int:
    """What `cruft diff` does: every template-owned file against a fresh render of the release this fork records."""
    answers = read_answers()
    with tempfile.TemporaryDirectory(prefix="template-drift-") as scratch:
        fresh = Template(template_url(answers), Path(scratch)).render(answers["_commit"], answers, "fresh")
    drifted = False
    for path, theirs in fresh.files.items():
        if not fresh.template_owned(path) or (Path(path).is_file() and Path(path).read_bytes() == theirs):
            continue
        drifted = True
        mine = Path(path).read_bytes() if Path(path).is_file() else b""
        try:
            sys.stdout.writelines(difflib.unified_diff(theirs.decode().splitlines(True), mine.decode().splitlines(True),
                                                       f"template: {path}", path))
        except UnicodeDecodeError:
            print(f"Binary file {path} differs from the template's")
    version = answers["_commit"]
    if drifted:
        say(f"The template-owned files above differ from template {version}. Updates merge such edits, and conflict\n"
            "when the template changes the same lines: where you can, move them into your own files (README.md,\n"
            '"What you may edit").')
        return 1
    say(f"No drift: the template-owned files match template {version}.")
    return 0


def main(argv: list[str]) -> int:
    os.chdir(Path(__file__).resolve().parent)
    command, *rest = argv or ["help"]
    if command == "update":
        return update(rest)
    if command == "drift":
        return drift()
    if command == "source":  # the weekly workflow's first check
        print(template_url(read_answers()))
        return 0
    say("Usage: template_sync.py update [--no-test] [COPIER OPTIONS] | drift | source")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
