"""Sends this fork's improvements of the template's own files back to the template: `./run upstream` runs this.

Template-owned: `copier update` keeps it current. The template makes each of its files here from a source of its
own: a plain file is copied as it is, a `.jinja` file is rendered with this fork's answers. Each change goes back to
its source: a plain copy whole; a rendered file hunk by hunk, each applied where the source's text is the rendered
text around it, and kept only if the source so changed renders what this fork has. A hunk whose lines hold this
fork's answers (its name, its ports) or come out of template logic (a flavour block) is never guessed at: it is
listed, with the source lines to edit by hand. The change is made on the release this fork records, then carried
onto the template's newest commit (what the template has changed since is listed too), and written as a patch for
the template's scripts/adopt, or committed on a branch of a local clone of the template (--into).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from pathspec import PathSpec

from core.update.template_clone import Template, fail, read_answers, recorded_commit, say, template_url
from core.update.template_merge import ANSWERS, Render, git
from core.update.template_sync import shown_answers, whole_value

PATCH = "upstream.patch"  # the default output, which forks' .gitignore lists: it is not part of the fork
HUNK_HEADER = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
JINJA = ("{{", "{%", "{#")  # what copier would render rather than copy


def diff_hunks(*diff: str, cwd: Path | None = None) -> list[str]:
    "The hunks of git diff's output, each from its @@ line (git diff --no-index OLD NEW compares any two files)."
    out = subprocess.run(["git", "diff", "--no-color", "--no-ext-diff", *diff], cwd=cwd, capture_output=True,
                         encoding="utf-8", errors="surrogateescape").stdout
    return re.split(r"(?m)^(?=@@ )", out)[1:]


def body(hunk: str) -> list[str]:
    return hunk.splitlines()[1:]


def old_lines(hunk: str) -> list[str]:
    return [line[1:] for line in body(hunk) if line[:1] in (" ", "-")]


def new_lines(hunk: str) -> list[str]:
    return [line[1:] for line in body(hunk) if line[:1] == "+"]


def apply_hunk(hunk: str, path: str, repo: Path) -> bool:
    "Applies one hunk to path in repo's working tree, wherever its old lines are; False, changing nothing, if nowhere."
    patch = f"--- a/{path}\n+++ b/{path}\n{hunk}".encode("utf-8", "surrogateescape")
    return subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=repo, input=patch,
                          capture_output=True).returncode == 0


def touched_lines(hunk: str) -> list[int]:
    "The lines of the old file a hunk changes: those it replaces or removes; where it only adds, those on either side."
    line, touched, previous = int(HUNK_HEADER.match(hunk)[1]), set(), " "
    for text in body(hunk):
        if text.startswith("-"):
            touched.add(line)
        elif text.startswith("+") and previous != "-":
            touched |= {line - 1, line}
        if text[:1] in (" ", "-"):
            line += 1
        previous = "-" if text.startswith("-") or (text.startswith("+") and previous == "-") else text[:1]
    return sorted(n for n in touched if n > 0)


def source_lines(source: Path, rendered: Path):
    """A function: a hunk of the rendered file -> the lines of the source, as it is now, that make the lines the hunk
    touches ("N: text"). git's line diff of the two aligns them: a line the same in both comes from its twin, the
    lines of a stretch that differs from that whole stretch of the source."""
    origin, source_line, rendered_line = {}, 1, 1
    for hunk in diff_hunks("--no-index", "-U0", "--", str(source), str(rendered)):
        old_count, new, new_count = (int(n) if n else 1 for n in HUNK_HEADER.match(hunk).groups()[1:])
        for _ in range((new if new_count else new + 1) - rendered_line):
            origin[rendered_line] = [source_line]
            rendered_line, source_line = rendered_line + 1, source_line + 1
        for _ in range(new_count):
            origin[rendered_line] = list(range(source_line, source_line + old_count))
            rendered_line += 1
        source_line += old_count
    text = source.read_text(errors="replace").splitlines()

    def lines_of(hunk: str) -> list[str]:
        numbers = {n for line in touched_lines(hunk) for n in origin.get(line, [line + source_line - rendered_line])}
        return [f"{n}: {text[n - 1]}" for n in sorted(numbers) if n <= len(text)]
    return lines_of


def identity() -> dict[str, str]:
    "The fork's git identity (git var reads its config and environment): the change's author and committer."
    ident = subprocess.run(["git", "var", "GIT_AUTHOR_IDENT"], capture_output=True, text=True)
    found = re.fullmatch(r"(.*) <(.*)> \d+ [-+]\d{4}", ident.stdout.strip())
    if not found:
        fail("The change needs an author, and git does not know who you are here:\n"
             "  git config user.name 'Your Name' && git config user.email you@example.com")
    name, email = found.groups()
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email}


def linked(path: str) -> bool:
    """Whether path, or a folder on the way to it, is a symbolic link here. Nothing is read through one: a template
    file replaced by a link to a secret would send the secret."""
    return any(part.is_symlink() for part in [Path(path), *Path(path).parents])


def inside(path: str, given: str) -> bool:
    "Whether path is the path given, or in the folder given."
    return path == given or path.startswith(f"{given}/")


def refusal(path: str, fresh: Render, never_touched: PathSpec, version: str) -> str:
    "Why path, not a changed template-owned file, is not sent."
    if path == ANSWERS:
        return "copier's record of this fork's answers and release (./run update -d changes an answer)"
    if linked(path):
        return ("a symbolic link here, or inside one: a link is never followed, so what it points to stays in this "
                "fork (make it a plain file to send it)")
    ignored = subprocess.run(["git", "check-ignore", "--quiet", path]).returncode == 0
    if never_touched.match_file(path) or ignored:
        return "never touched by the template: data, logs and secrets stay in this fork"
    if fresh.forks.match_file(path):
        return "yours (fork-owned): the template only scaffolds it, so what you made of it stays yours"
    if path in fresh.files:
        return (f"the same as template {version}'s: nothing to send" if Path(path).exists() else
                "deleted here: a deletion is not sent, as it would delete the file from every fork")
    if Path(path).is_dir():
        return f"no file in it that the template owns differs from template {version}'s"
    if Path(path).exists():
        return "not a template file: this fork added it, so it stays this fork's"
    return "no such file, here or in the template"


def chosen_files(paths: list[str], fresh: Render, never_touched: PathSpec, version: str) -> list[str]:
    """The template-owned files this fork changed, among the paths given (files or folders), or all of them. A path
    without such a change ends the command with the reason, before anything is made."""
    changed = [path for path in fresh.files if fresh.template_owned(path) and not linked(path)
               and Path(path).is_file() and Path(path).read_bytes() != fresh.files[path]]
    if not paths:
        return changed
    chosen, refused = set(), []
    for given in (Path(path).as_posix() for path in paths):
        found = [path for path in changed if inside(path, given)]
        chosen.update(found)
        if not found:
            refused.append(f"  {given}: {refusal(given, fresh, never_touched, version)}")
    if refused:
        fail("Nothing is sent: these are not changes of yours to files the template owns.\n" + "\n".join(refused))
    return sorted(chosen)


class Port:
    """The change being made, in a worktree of the template: each changed file goes back to its source at the
    fork's release, then the whole is carried onto the template's newest commit. What cannot go is left, with why,
    for a person."""

    def __init__(self, template: Template, answers: dict, fresh: Render):
        self.template, self.answers, self.fresh = template, answers, fresh
        self.release = template.commit(answers["_commit"])
        self.work = template.scratch / "work"
        template.git("worktree", "add", "--quiet", "--detach", str(self.work), self.release)
        config = template.config(self.release)
        self.subdirectory, self.suffix = config.get("_subdirectory", ""), config.get("_templates_suffix", ".jinja")
        self.sources = set(template.git("ls-tree", "-r", "-z", "--name-only", self.release).split("\0"))
        self.carried = {}  # rendered path -> (its source, the hunks applied, or None for a whole plain copy)
        self.left = []  # what a person has to port: (rendered path, source, why, the source lines, the hunk)

    def git(self, *args: str) -> str:
        return git(*args, cwd=self.work)

    def carry(self, path: str) -> None:
        source = Path(self.subdirectory, path).as_posix()
        if source + self.suffix in self.sources:
            self.carry_rendered(path, source + self.suffix)
        elif source in self.sources:
            (self.work / source).write_bytes(Path(path).read_bytes())
            self.carried[path] = (source, None)
        else:
            self.left.append((path, "", "its name is rendered from the answers: port it by hand", [], ""))

    def carry_rendered(self, path: str, source: str) -> None:
        rendered = self.fresh.root / path
        lines_of = source_lines(self.work / source, rendered)  # before any hunk changes the source
        applied = []
        for hunk in diff_hunks("--no-index", "--", str(rendered), path):
            why = self.unportable(hunk)
            if not why and apply_hunk(hunk, source, self.work):
                applied.append(hunk)
            else:
                self.left.append((path, source, why or self.not_source_text(hunk), lines_of(hunk), hunk))
        if applied:
            self.carried[path] = (source, applied)

    def shown_answers(self, lines: list[str]) -> str:
        "This fork's answers that lines show, as 'name (value)'."
        return ", ".join(f"{name} ({value})" for name, value in shown_answers(self.answers).items()
                         if any(whole_value(value).search(line) for line in lines))

    def unportable(self, hunk: str) -> str | None:
        "Why the new lines of a hunk cannot go into a .jinja source as they are, if they cannot."
        if any(mark in line for line in new_lines(hunk) for mark in JINJA):
            return "its new lines have Jinja syntax, which the template would render rather than copy"
        if shown := self.shown_answers(new_lines(hunk)):
            return f"its new lines have this fork's {shown}, which the template renders from its answers"
        return None

    def not_source_text(self, hunk: str) -> str:
        "Why the lines of a hunk are nowhere in its .jinja source."
        if shown := self.shown_answers(old_lines(hunk)):
            return f"its lines have this fork's {shown}, which the template renders from its answers"
        return "its lines are not the source's text: template logic (a flavour block, say) makes them"

    def commit(self, message: str) -> str:
        "Commits the change as it is now, as one commit on the release (replacing one made before)."
        self.git("reset", "--quiet", "--soft", self.release)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def check_renders(self) -> None:
        """Renders the changed sources with this fork's answers: a rendered file must differ from its render at the
        release by the applied hunks and nothing else, or its source goes back as it was and its hunks are left."""
        if all(applied is None for _, applied in self.carried.values()):
            return
        check = self.template.render(self.commit("Check"), self.answers, "check")
        for path, (source, applied) in list(self.carried.items()):
            if applied is None:
                continue
            rendered = diff_hunks("--no-index", "--", str(self.fresh.root / path), str(check.root / path))
            if list(map(body, rendered)) != list(map(body, applied)):
                self.git("checkout", self.release, "--", source)
                lines_of = source_lines(self.work / source, self.fresh.root / path)
                self.left += [(path, source, "applied to the source, it renders otherwise than here: template logic "
                                             "is near", lines_of(hunk), hunk) for hunk in applied]
                del self.carried[path]

    def onto(self, head: str) -> None:
        """Carries the change onto the template's newest commit. A file the template has deleted or renamed since is
        left; one it has changed on the same lines takes the hunks that still apply, and the others are left."""
        since = self.answers["_commit"]
        for path, (source, _) in list(self.carried.items()):
            if subprocess.run(["git", "cat-file", "-e", f"{head}:{source}"], cwd=self.work).returncode:
                self.git("checkout", self.release, "--", source)
                self.left.append((path, source, f"the template has deleted or renamed {source} since {since}", [], ""))
                del self.carried[path]
        change = self.commit("Change")
        self.git("checkout", "--quiet", "--detach", head)
        if not self.carried or subprocess.run(["git", "cherry-pick", "--no-commit", change], cwd=self.work,
                                              capture_output=True).returncode == 0:
            return
        rendered = {source: path for path, (source, _) in self.carried.items()}
        for source in self.git("diff", "--name-only", "--diff-filter=U").splitlines():
            path = rendered.get(source, source)
            self.git("checkout", head, "--", source)
            hunks = diff_hunks(f"{change}^", change, "--", source, cwd=self.work)
            kept = [hunk for hunk in hunks if apply_hunk(hunk, source, self.work)]
            self.left += [(path, source, f"the template has changed these lines since {since}", [], hunk)
                          for hunk in hunks if hunk not in kept]
            if not kept:
                self.carried.pop(path, None)
            self.git("add", source)

    def message(self, head: str) -> str:
        name = self.answers["project_name"]
        lines = [f"Port back from {name} ({self.answers['flavour']}, template {self.answers['_commit']})", "",
                 f"./run upstream in {name}, a {self.answers['flavour']} fork on template {self.answers['_commit']}, "
                 "sent its changes to these files of the template:"]
        lines += [f"  {source}, from its {path}" for path, (source, _) in sorted(self.carried.items())]
        if self.left:
            lines += ["", "Left out, for a person (./run upstream listed each with what to edit):"]
            lines += [f"  {path}: {why}" for path, _, why, _, _ in self.left]
        if head != self.release:
            lines += ["", f"Made on template {self.template.name(self.release)}, carried onto "
                          f"{self.template.name(head)}."]
        return "\n".join(lines) + "\n"

    def report(self) -> None:
        for path, source, why, lines, hunk in self.left:
            say(f"{path}: not sent: {why}.")
            if lines:
                say(f"  Edit {source} by hand, near:\n" + "\n".join(f"    {source}:{line}" for line in lines))
            if hunk:
                say("  The change:\n" + "".join(f"    {line}\n" for line in hunk.splitlines()).rstrip("\n"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./run upstream", allow_abbrev=False, description=(
        "Turns your changes of the template's own files into a change to the template's sources: a patch for the "
        "template's scripts/adopt, or a branch in a local clone of the template (--into). Your own files, data, "
        "logs and secrets are never sent."))
    parser.add_argument("paths", nargs="*", metavar="PATH", help="the files or folders to send (default: every "
                                                                 "template-owned file you changed; ./run drift lists them)")
    parser.add_argument("-o", "--output", default=PATCH, help=f"the patch file to write (default: {PATCH})")
    parser.add_argument("--into", metavar="CLONE", help="a local clone of the template: commit the change there, on "
                                                        "a branch upstream/SLUG off its checked-out branch")
    options = parser.parse_args(argv)
    os.chdir(Path(__file__).resolve().parents[2])  # the fork's root
    answers = read_answers()
    os.environ.update(identity())
    into = Path(options.into).resolve() if options.into else None
    branch = f"upstream/{answers['project_slug']}"
    with tempfile.TemporaryDirectory(prefix="template-upstream-") as scratch:
        template = Template(str(into) if into else template_url(answers), Path(scratch))
        if into and git("branch", "--list", branch, cwd=into).strip():
            fail(f"{into} has a branch {branch} already: adopt or delete it first (git -C {into} branch -D {branch}).")
        recorded_commit(template, answers)
        fresh = template.render(answers["_commit"], answers, "fresh")
        never_touched = PathSpec.from_lines("gitignore", [entry for entry in
                                                          template.config(answers["_commit"]).get("_exclude", [])
                                                          if not any(mark in entry for mark in JINJA)])
        port = Port(template, answers, fresh)
        for path in chosen_files(options.paths, fresh, never_touched, answers["_commit"]):
            port.carry(path)
        given = [Path(path).as_posix() for path in options.paths]
        port.left += [(path, "", refusal(path, fresh, never_touched, answers["_commit"]), [], "")
                      for path in fresh.files if fresh.template_owned(path)
                      and (linked(path) or not given and not Path(path).exists())
                      and (not given or any(inside(path, folder) for folder in given))]
        port.check_renders()
        head = template.commit("HEAD")
        port.onto(head)
        port.report()
        if not port.carried:
            say("Nothing to send: " + ("none of your changes can go to the template as they are (above)." if port.left
                                       else f"the template's files here are as template {answers['_commit']} made them."))
            return 1
        if not port.git("diff", "--cached", "--name-only").strip():
            say(f"Nothing to send: the template at {template.name(head)} has these changes already.")
            return 1
        port.git("commit", "--quiet", "-m", port.message(head))
        sent = "\n".join(f"  {path} -> {source}" for path, (source, _) in sorted(port.carried.items()))
        if into:
            port.git("update-ref", "refs/port/change", "HEAD")
            git("fetch", "--quiet", str(template.repo), f"refs/port/change:refs/heads/{branch}", cwd=into)
            say(f"Committed on the branch {branch} of {into}, off {template.name(head)}:\n{sent}\n"
                f"There: scripts/adopt {branch}")
        else:
            patch = Path(options.output).resolve()
            patch.write_text(port.git("format-patch", "-1", "--stdout", "HEAD"))
            say(f"Wrote {patch}, a change to the template at {template.name(head)}:\n{sent}\n"
                f"In the template's repository: scripts/adopt {patch}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
