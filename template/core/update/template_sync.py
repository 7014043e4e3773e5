"""Keeps this fork in step with the template it was rendered from: `./run update` and `./run drift` run this.

Template-owned: `copier update` keeps it current. Copier merges the template's changes into the files the template
owns and leaves yours alone, but it is silent where a change of yours meets one of the template's: it exits 0 on a
conflict, drops your version of a file the new release deletes or renames, loses your change to a binary file, and
skips the template's change to a file you deleted. This script names each such file and keeps your version where
you will find it. It compares fresh renders of template releases, made with this fork's answers from one clone of
the template (template_clone.py). The update is worked out apart and applied whole (template_transaction.py).
"""

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from core.update import fork_check
from core.update.template_clone import Template, choose_target, fail, read_answers, say, template_url
from core.update.template_merge import ANSWERS, Render, file_by_file, git, is_binary, keep_binary_changes, keep_fork_versions, \
    renames, skipped_template_changes
from core.update.template_transaction import Interrupted, NoRoom, PartlyApplied, Scratch, process_group, stop_on_signals


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


def copier_update(*args: str) -> int:
    """copier update, its messages passed on as they come, except that an answer its validator refuses (-d
    app_port=80, say) is the validator's message, not copier's traceback. It runs in a process group of its own,
    with the migrations it starts, stopped however the update ends."""
    command = [sys.executable, "-m", "copier", "update", "--defaults", "--conflict", "inline", *args]
    with process_group(command, stderr=subprocess.PIPE, text=True) as copier:
        traceback = []
        for line in copier.stderr:
            if traceback or line.startswith("Traceback (most recent call last):"): traceback.append(line)
            else: sys.stderr.write(line)
        status = copier.wait()
    if traceback and traceback[-1].startswith("ValueError: Validation error for question"):
        say(traceback[-1].removeprefix("ValueError: ").rstrip())
    elif traceback:  # the error, without the frames that led to it
        say(f"copier update stopped: {''.join(line for line in traceback[1:] if not line.startswith(' ')).strip()}")
    return status


class Update:
    """The update worked out in the scratch worktree (the current directory): copier's merge and migrations, then
    every file the three-way rule or copier gets wrong put right, and what a person must know gathered."""

    def __init__(self, template: Template, target: str, before: dict, copier_args: list[str]):
        self.old = template.render(before["_commit"], before, "old")
        self.mine = {path: Path(path).read_bytes() if Path(path).is_file() else None for path in self.old.files}
        tracked = set(git("ls-files", "-z").split("\0"))
        self.status = copier_update(f"--vcs-ref={target}", *copier_args)
        if self.status:
            return
        self.after = read_answers()
        self.new = template.render(target, self.after, "new")
        moved = renames(self.old, self.new)
        remover = self.remover(template, target, before)
        self.kept = keep_fork_versions(self.old, self.new, moved, self.mine, remover) | \
            keep_binary_changes(self.old, self.new, self.mine)
        self.skipped = skipped_template_changes(self.old, self.new, moved, self.mine, tracked)
        self.leftovers = mentions_of_old_answers(before, self.after, self.new)

    def remover(self, template: Template, target: str, before: dict) -> Callable[[str], str]:
        """What left a file out of the new render: the template, or the answers changed with -d (a flavour switch
        leaves out the files of the old flavour), told apart by a render of the new release with the old answers."""
        changed = [f"{name} {before.get(name)} -> {value}" for name, value in shown_answers(self.after).items()
                   if before.get(name) != value]
        if not changed:
            return lambda path: "deleted by the template"
        kept_answers = template.render(target, before, "old-answers")
        answers = f"left out by your answer change ({', '.join(changed)})"
        return lambda path: answers if path in kept_answers.files else "deleted by the template"

    def conflicts(self) -> set[str]:
        return set(git("diff", "--name-only", "--diff-filter=U").splitlines()) | set(self.kept)

    def preview(self, scratch: Scratch) -> None:
        "What --dry-run shows: each file, and what migrations do to files git does not track."
        written, removed = scratch.untracked_changes(scratch.result_tree())
        print("\n".join(file_by_file(self.old, self.new, self.mine, self.conflicts()) +
                        [f"  {'written by a migration':<26}{path}" for path in written] +
                        [f"  {'removed by a migration':<26}{path}" for path in removed]))


def parsed(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    "The options of ./run update, and those that go on to copier update."
    parser = argparse.ArgumentParser(prog="./run update", allow_abbrev=False, description=(
        "Merges the template's newest release into this fork, then runs its tests. Other options go to copier update."))
    parser.add_argument("--no-test", action="store_true", help="merge only: run ./run test yourself before committing")
    parser.add_argument("--dry-run", action="store_true", help="show what the update would do to each file, and "
                                                               "change nothing")
    parser.add_argument("-r", "--vcs-ref", help="the template tag or commit to update to (default: the newest release; "
                                                ":current: keeps this fork's version, to change answers)")
    parser.add_argument("-d", "--data", action="append", default=[], metavar="NAME=VALUE", help="change an answer")
    parser.add_argument("--data-file", help="change answers from a YAML file")
    options, copier_args = parser.parse_known_args(argv)
    copier_args += [f"--data={data}" for data in options.data]
    copier_args += [f"--data-file={options.data_file}"] if options.data_file else []
    return options, copier_args


def update(argv: list[str]) -> int:
    options, copier_args = parsed(argv)
    if changes := git("status", "--porcelain"):
        fail("Refusing to update: the working tree has uncommitted changes (below). Commit them, or set them aside\n"
             "with git stash push --include-untracked (and bring them back after the update with git stash pop), so\n"
             "that the update's changes can be reviewed, and dropped, on their own.\n" + changes.rstrip())
    before, fork = read_answers(), Path.cwd()
    stop_on_signals()
    try:
        scratch = Scratch(fork)
        try:
            template = Template(template_url(before), scratch.dir)
            target = choose_target(template, before, options.vcs_ref, bool(options.data or options.data_file))
            if not target:
                return 0
            os.chdir(scratch.work)  # everything until apply() works on the scratch worktree
            done = Update(template, target, before, copier_args)
            if done.status == 4:
                say("This update crosses a template release with a migration, a script from the template that moves "
                    f"or\nconverts files in this fork: CHANGELOG.md in {template.url} says what it does.\n"
                    f"Read it, then run: ./run update --trust {' '.join(argv)}")
            if done.status not in (0, 4) and (full := scratch.full()):
                raise NoRoom(full)  # git and copier may not say so, and have freed what they wrote
            if done.status:
                say("Nothing was changed: the update stopped before it was applied, and this fork is as it was.")
                return done.status
            if options.dry_run:
                done.preview(scratch)
                say(f"That is what updating to template {done.after['_commit']} would do (--dry-run): nothing was "
                    "changed.")
                return 0
            held = scratch.apply()
        except Exception as error:
            if not isinstance(error, NoRoom | PartlyApplied) and (full := scratch.full()):
                raise NoRoom(full) from error
            raise
        finally:
            os.chdir(fork)
            scratch.remove()
    except Interrupted as stop:
        say(f"Interrupted ({stop}) before the update was applied: nothing was changed, this fork is as it was.")
        return 130
    except PartlyApplied as error:  # a disk that filled during the last step itself
        say(f"The update failed while it was being applied ({error}): some of this fork's files are the update's, "
            "its branch and index are as they were. Free some space, then put the files back with git reset --hard "
            "&& git clean -fd, and run ./run update again.")
        return 1
    except Exception as error:  # a crash, a full disk: the fork is still as it was
        why = str(error) if isinstance(error, NoRoom) else cause(error)
        space = isinstance(error, NoRoom) or "No space left on device" in why
        say(f"The update failed before it was applied ({why}): nothing was changed, this fork is as it was."
            f"{' Free some space, then run ./run update again.' if space else ''}")
        return 1
    try:
        if held:
            raise Interrupted(held[0])
        return report(done.after["_commit"], done.kept, done.skipped, done.leftovers, options.no_test,
                      fork_check.own_modules(done.new.files))
    except Interrupted as stop:
        say(f"Interrupted ({stop}) after the update was applied: the fork has the whole update, not committed and "
            "not tested. Run ./run test, or drop the update: git reset --hard && git clean -fd")
        return 130


def cause(error: Exception) -> str:
    "What went wrong, in a line: a command's own last word on it (git's), else the error."
    if isinstance(error, subprocess.CalledProcessError) and error.stderr:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr
        return stderr.strip().splitlines()[-1]
    return f"{type(error).__name__}: {error}"


def report(version: str, kept: dict[str, str], skipped: list[str], leftovers: list[str], no_test: bool,
           own: list[str]) -> int:
    if skipped:
        say("You deleted these template files, so this update's changes to them are not applied (./run drift shows "
            "the template's version):")
        say("\n".join(f"  {line}" for line in skipped))
    if leftovers:
        say("\n".join(leftovers))
    if kept:
        say("These files of yours could not take the template's change. Your versions are kept, as conflicts to "
            "resolve:")
        say("\n".join(f"  {line}" for line in kept.values()))
    conflicted = [path for path in git("diff", "--name-only", "--diff-filter=U").splitlines() if path not in kept]
    if conflicted:
        say("The update conflicts with your changes in these files:")
        say("\n".join(f"  {path}" for path in conflicted))
        say("Resolve each '<<<<<<< before updating' ... '>>>>>>> after updating' block, then git add the file.")
    if kept or conflicted:
        say("Then run ./run test and commit. To drop the update instead: git reset --hard && git clean -fd")
        return 1
    if own and not fits(own):
        say("The update is merged, but your code calls the template in ways it no longer takes (above). Fix them, or "
            "drop the update: git reset --hard && git clean -fd")
        return 1
    if no_test:
        say(f"Merged template {version} without running the tests (--no-test): run ./run test, review with git diff, "
            "then commit.")
        return 0
    # The updated ./run tests, which may set up differently from the one that started this; what the tests start
    # is stopped with them, however this ends.
    with process_group(["./run", "test"]) as tests:
        failed = tests.wait()
    if failed:
        say("The update is merged but the tests fail (above). Fix them, or drop the update: "
            "git reset --hard && git clean -fd")
        return 1
    say(f"Updated to template {version}. Nothing is committed: review with git diff, then commit.")
    return 0


def fits(own: list[str]) -> bool:
    """Whether the fork's own files fit the updated template's modules: the updated ./run checks them, with the
    updated .venv, before the tests (which may never call what broke)."""
    with process_group(["./run", "check", *own]) as check:
        return check.wait() == 0


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
        if is_binary(mine) or is_binary(theirs):
            print(f"Binary file {path} differs from the template's")
            continue
        mine, theirs = (content.decode(errors="replace").splitlines(True) for content in (mine, theirs))
        sys.stdout.writelines(difflib.unified_diff(theirs, mine, f"template: {path}", path))
    version = answers["_commit"]
    if drifted:
        say(f"The template-owned files above differ from template {version}. Updates merge such edits, and conflict\n"
            "when the template changes the same lines: where you can, move them into your own files (README.md,\n"
            '"What you may edit").')
        return 1
    say(f"No drift: the template-owned files match template {version}.")
    return 0


def main(argv: list[str]) -> int:
    os.chdir(Path(__file__).resolve().parents[2])  # the fork's root
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
