"""scripts/adopt PATCH|BRANCH: takes a fork's improvement (what its `./run upstream` made) into the template, on a
branch of its own, and says what it does to every flavour. It applies the change, shows the files it changes, and
renders every flavour before and after it to see which it reaches. With --test, and only then, it runs every
flavour's own test suite and the template's, which runs the change's code, and says which broke.
It never merges: the branch is for a person to review, and to merge into the branch adopt started from."""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from copier.errors import UnsafeTemplateError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from template_tools import FLAVOURS, ROOT, git, render  # noqa: E402

FORK_SUITES = "test_fork_passes_its_own_tests"  # scripts/test runs each flavour's suite in it: adopt has run them
MAKES_LINK = re.compile(r"^ (?:create mode 120000|mode change \d+ => 120000) (.+)$", re.M)  # git apply --summary


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str):
    say(message)
    sys.exit(1)


def attempt(*args: str) -> subprocess.CompletedProcess:
    "A git command that may fail, its output kept for saying why."
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def change_text(change: str, start: str) -> str:
    "The change as a patch: the patch file, or what the branch changes since it left start."
    if Path(change).is_file():
        return Path(change).read_text(errors="surrogateescape")
    if attempt("rev-parse", "--verify", "--quiet", f"refs/heads/{change}").returncode == 0:
        return git(ROOT, "diff", "--binary", f"{start}...{change}")
    fail(f"{change} is neither a patch file nor a branch of this repository.")


def patch_paths(patch: str) -> list[str]:
    "Every path a patch writes (both names of a rename), from git apply --numstat -z."
    listed = subprocess.run(["git", "apply", "--numstat", "-z"], cwd=ROOT, input=patch.encode(errors="surrogateescape"),
                            capture_output=True)
    if listed.returncode:
        fail(f"This is not a patch git can read: nothing is changed.\n{listed.stderr.decode(errors='replace').strip()}")
    fields, paths = listed.stdout.decode(errors="surrogateescape").split("\0"), []
    while fields:
        added_deleted_path = fields.pop(0).split("\t", 2)
        if len(added_deleted_path) == 3:  # a rename lists its two paths next, each a field of its own
            paths += [added_deleted_path[2]] if added_deleted_path[2] else [fields.pop(0), fields.pop(0)]
    return paths


def link_problems(patch: str, start: str) -> list[str]:
    """What in a change is a symbolic link: one it makes, or one of the template's it writes through. A link in the
    template would put what it points to (a token, say) into every render, and git would write where it points."""
    made = subprocess.run(["git", "apply", "--summary"], cwd=ROOT, input=patch.encode(errors="surrogateescape"),
                          capture_output=True).stdout.decode(errors="surrogateescape")
    problems = [f"  {path}: the change makes it a symbolic link" for path in MAKES_LINK.findall(made)]
    ways = {path: [path, *map(str, list(Path(path).parents)[:-1])] for path in patch_paths(patch)}
    tree = git(ROOT, "ls-tree", "-z", start, "--", *{part for way in ways.values() for part in way}) if ways else ""
    links = {entry.split("\t", 1)[1] for entry in tree.split("\0") if entry.startswith("120000 ")}
    problems += [f"  {path}: {part} is a symbolic link in the template, which the change would write through"
                 for path, way in ways.items() for part in way if part in links]
    return problems


def take(change: str, start: str) -> str:
    """Switches to a new branch adopt/NAME off start with the change on it: a patch applied with git am (3-way,
    so a patch made on an older commit applies where the lines moved), or a branch rebased onto start."""
    patch = Path(change)
    name = re.sub(r"[^\w.-]+", "-", patch.stem if patch.is_file() else change).strip("-.")
    branch = f"adopt/{name}"
    if attempt("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0:
        fail(f"There is a branch {branch} already: adopt it, or delete it (git branch -D {branch}), then run this again.")
    if patch.is_file():
        git(ROOT, "switch", "--quiet", "-c", branch)
        applied = attempt("am", "--3way", str(patch.resolve()))
        undo = ["am", "--abort"]
    elif attempt("rev-parse", "--verify", "--quiet", f"refs/heads/{change}").returncode == 0:
        git(ROOT, "switch", "--quiet", "-c", branch, change)
        applied = attempt("rebase", "--quiet", start)
        undo = ["rebase", "--abort"]
    else:
        fail(f"{change} is neither a patch file nor a branch of this repository.")
    if applied.returncode:
        attempt(*undo)
        git(ROOT, "checkout", "--quiet", start)
        git(ROOT, "branch", "--quiet", "-D", branch)
        fail(f"{change} does not apply to {start}: nothing is changed.\n{(applied.stdout + applied.stderr).strip()}")
    git(ROOT, "config", f"branch.{branch}.adoptedOnto", start)  # for scripts/adopt --test BRANCH later
    return branch


def adopted(branch: str) -> str | None:
    "The branch or commit a branch scripts/adopt made started from; None for any other."
    return attempt("config", f"branch.{branch}.adoptedOnto").stdout.strip() or None


def recorded_commit(root: Path) -> str:
    return yaml.safe_load((root / ".copier-answers.yml").read_text())["_commit"]


def rendered_files(root: Path, commits: list[str]) -> dict[str, bytes]:
    """A render's files, with the names of the template commits compared ("v0.2.0", "v0.2.0-1-gabc1234") as one
    word: the commit a render records (in .copier-answers.yml, and the app's footer) says nothing about a change."""
    files = {}
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for commit in sorted(commits, key=len, reverse=True):  # the longer first: the other may be its start
                content = content.replace(commit.encode(), b"COMMIT")
            files[path.relative_to(root).as_posix()] = content
    return files


def reach(flavour: str, before: str, after: str, scratch: Path) -> tuple[Path, list[str]]:
    "The flavour rendered after the change, and the files the change makes otherwise in it."
    old = render(scratch / f"{flavour}-before", vcs_ref=before, flavour=flavour)
    fork = render(scratch / flavour, vcs_ref=after, flavour=flavour)
    commits = [recorded_commit(old), recorded_commit(fork)]
    old_files, new_files = rendered_files(old, commits), rendered_files(fork, commits)
    return fork, sorted(path for path in old_files.keys() | new_files.keys()
                        if old_files.get(path) != new_files.get(path))


def tests(command: list[str], cwd: Path, what: str) -> tuple[bool, str]:
    """Runs a test suite: whether nothing broke, and the verdict with pytest's summary. A selection (-k) that picks
    none of its tests breaks nothing, and says so."""
    say(f"Testing {what} ...")
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1].strip("= ")
    if done.returncode == 5:
        return True, f"no test selected ({summary})"
    if done.returncode:
        say(done.stdout[-6000:] + done.stderr[-3000:])
        return False, f"BROKE: {summary}"
    return True, f"passed: {summary}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/adopt", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("change", metavar="PATCH|BRANCH", help="a patch file from a fork's ./run upstream, or a "
                                                               "branch (./run upstream --into made it)")
    parser.add_argument("--test", action="store_true", help="also run every flavour's tests and the template's: "
                                                            "they run the change's code (its tests, its app), so read "
                                                            "it first; BRANCH may be the adopt/ branch made before")
    parser.add_argument("--quick", action="store_true", help="with --test: test only the flavours the change "
                                                             "reaches, and leave the template's own tests to "
                                                             "scripts/test (scripts/release runs them before it tags)")
    parser.add_argument("-k", metavar="EXPRESSION", help="with --test: run only the tests pytest -k selects, in the "
                                                         "forks and the template alike")
    options = parser.parse_args(argv)
    if dirty := attempt("status", "--porcelain", "--untracked-files=no").stdout:
        fail("Refusing to adopt: the working tree has uncommitted changes, which the branch would not hold:\n" + dirty)
    here = attempt("symbolic-ref", "--quiet", "--short", "HEAD").stdout.strip() or git(ROOT, "rev-parse", "HEAD").strip()
    if start := adopted(options.change):  # adopted before: tested where it is
        branch = options.change
        git(ROOT, "switch", "--quiet", branch)
    else:
        start = here
        if problems := link_problems(change_text(options.change, start), start):
            fail(f"Refusing to adopt {options.change}: the template holds files, never symbolic links, and git would "
                 "follow one. Nothing is changed.\n" + "\n".join(problems))
        branch = take(options.change, start)
    before = git(ROOT, "merge-base", start, branch).strip()
    after = git(ROOT, "rev-parse", "HEAD").strip()
    say(f"On the branch {branch}, off {start}:\n" + git(ROOT, "log", "--format=  %h %s", f"{before}..{after}")
        + "It changes:\n" + git(ROOT, "diff", "--stat=120", before, after).rstrip("\n"))
    selected = ["-k", options.k] if options.k else []
    results, reached = {}, {}
    if options.test:
        say("Running the change's code, as --test asks: every flavour's tests" +
            ("" if options.quick else " and the template's") + ".")
    with tempfile.TemporaryDirectory(prefix="adopt-") as scratch:
        for flavour in FLAVOURS:
            try:
                fork, reached[flavour] = reach(flavour, before, after, Path(scratch))
            except UnsafeTemplateError as error:
                fail(f"The change makes copier run code of its own ({error}), which adopt never trusts: read it "
                     f"(git show {branch}). The branch {branch} is left; git switch {start} goes back.")
            if options.test and (reached[flavour] or not options.quick):
                results[flavour] = tests([str(fork / "run"), "test", "-q", "-p", "no:cacheprovider", *selected],
                                         fork, f"the {flavour} fork")
    if options.test and not options.quick:
        template_selection = f"({options.k}) and not {FORK_SUITES}" if options.k else f"not {FORK_SUITES}"
        results["the template"] = tests([str(ROOT / "scripts/test"), "-q", "-p", "no:cacheprovider", "-k",
                                         template_selection], ROOT, "the template")
    say("The change reaches:")
    say("\n".join(f"  {flavour}: {', '.join(files) or 'nothing (no file it renders changes)'}"
                  for flavour, files in reached.items()))
    if not options.test:
        say(f"Nothing of the change has run: its tests, and every fork's, run its code. Read it (git show {branch}), "
            f"then test it: scripts/adopt --test {branch}")
        return 0
    say("Tests" + (f" (only those -k '{options.k}' selects)" if options.k else "") + ":")
    say("\n".join(f"  {what}: {verdict}" for what, (_, verdict) in results.items()))
    if options.quick:
        untested = [flavour for flavour in FLAVOURS if flavour not in results]
        say(f"  not run (--quick): {', '.join(untested) + ' (not reached), ' if untested else ''}the template's own "
            "tests (scripts/test runs them)")
    broke = [what for what, (passed, _) in results.items() if not passed]
    if broke:
        say(f"Broke: {', '.join(broke)} (output above). The branch {branch} is left for you to fix; git switch "
            f"{start} goes back.")
        return 1
    say(f"Nothing broke. Nothing is merged: review the branch (git show), then git switch {start} && git merge "
        f"{branch}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
