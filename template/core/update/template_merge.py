"""The three-way rule, file by file, between fresh renders of the template: the fork's recorded release (base), the
fork (ours), the new release with the fork's answers (theirs). `./run update` uses it where copier falls short.

Template-owned: `copier update` keeps it current.
"""

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from pathspec import PathSpec

ANSWERS = ".copier-answers.yml"
# copier's own conflict labels, so a conflict reads the same whoever made it (and pre-commit's check finds it).
LABELS = ["-L", "before updating", "-L", "last update", "-L", "after updating"]


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True).stdout.decode()


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


def keep_fork_versions(old: Render, new: Render, moved: dict[str, str], mine: dict[str, bytes | None],
                       remover: Callable[[str], str]) -> dict[str, str]:
    """Every file the fork changed that the new render deletes or renames (copier drops those changes) comes back
    as a conflict to resolve: a renamed one merged into its new name, a deleted one (or a renamed one git cannot
    merge) as it was. remover(path) says what left the file out. Returns, for each conflict, what happened to it."""
    kept = {}
    for path, content in mine.items():
        if content is None or content == old.files[path] or path in new.files:
            continue
        target = moved.get(path)
        theirs = Path(target).read_bytes() if target and Path(target).is_file() else None
        if theirs == old.files[path]:  # renamed, and otherwise unchanged: the fork's bytes, binary ones too
            merged = (content, 0)
        else:
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
            what = f"renamed to {target} by the template" if target else remover(path)
            kept[path] = (f"{path}: {what}; your version is kept here. git rm {path} to follow the "
                          f"template, or git add {path} to keep it as a file of your own.")
    return kept


def is_binary(content: bytes) -> bool:
    return b"\0" in content[:8000]  # git's own test


def keep_binary_changes(old: Render, new: Render, mine: dict[str, bytes | None]) -> dict[str, str]:
    """Copier applies the fork's changes as a text diff, which drops a binary file's change: here the three-way rule
    holds byte for byte. Changed by the fork only, the fork's bytes; by both, a conflict with the fork's version in
    place and the template's beside it. Returns, for each conflict, what to do."""
    kept = {}
    for path, ours in mine.items():
        base, theirs = old.files[path], new.files.get(path)
        if ours is None or theirs is None or ours == base or not new.template_owned(path) or \
                not any(map(is_binary, (base, ours, theirs))):
            continue  # a deletion is keep_fork_versions' or skipped_template_changes'; a fork-owned file stays
        Path(path).write_bytes(ours)
        if theirs not in (base, ours):
            Path(f"{path}.template").write_bytes(theirs)
            mark_conflict(path, base, ours, theirs)
            kept[path] = (f"{path}: changed by you and by the template, and a binary file cannot be merged: yours is in "
                          f"place, the template's beside it as {path}.template. Keep one (copy it over {path}), "
                          f"delete {path}.template, then git add {path}.")
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


def committed(path: str) -> bytes | None:
    shown = subprocess.run(["git", "cat-file", "blob", f"HEAD:{path}"], capture_output=True)
    return None if shown.returncode else shown.stdout


def file_by_file(old: Render, new: Render, mine: dict[str, bytes | None], conflicts: set[str]) -> list[str]:
    """What the update does to each file the template renders, by comparing the fork's version, the template's and
    the result: unchanged, the template's, merged, a conflict, the fork's kept, or skipped as the fork deleted it."""
    lines = []
    for path in sorted((set(old.files) | set(new.files)) - {ANSWERS}):
        ours = mine[path] if path in mine else committed(path)
        theirs, result = new.files.get(path), Path(path).read_bytes() if Path(path).is_file() else None
        if path in conflicts:
            what = "conflict"
        elif result == ours:
            what = ("unchanged" if ours == theirs else "skipped: you deleted it" if ours is None else
                    "yours kept")
        else:
            what = "the template's" if result == theirs else "merged"
        lines.append(f"  {what:<26}{path}{'' if result is not None or ours is None else ' (deleted)'}")
    return lines
