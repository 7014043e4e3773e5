"""Makes `./run update` a transaction: the update is worked out in a scratch worktree of this fork's HEAD, and this
fork's working tree and index change only at the end, in one step, with the complete result.

Template-owned: `copier update` keeps it current. Until that step (the point of no return) an interruption, a
failed migration, a crash or a full disk leaves the fork as it was: the scratch worktree is simply removed. The
step itself first writes what it can aside (the new index, the data migrations wrote) and checks that each disk it
writes to has room for the rest; only a disk that fills during the step itself can leave it half done, and then
the fork's branch and index are as they were, and `git reset --hard && git clean -fd` brings its files back. What
the update starts (copier and its migrations, the fork's tests and what they start) runs in a process group of its own,
stopped on every way out, with what left the group for a session of its own (a test's server).
"""

import os
import shutil
import signal
import subprocess
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import psutil

from core.update.template_merge import git

NOT_COPIED = ".venv"  # the environment: large, and the update runs on the fork's own
NO_HOOKS = ("-c", f"core.hooksPath={os.devnull}")  # the fork's git hooks are for its own commits
GRACE = 30  # seconds a stopped process group has to tidy up (pytest's fixtures stop what they started)
# In the environment of all a process group starts, whatever its session: what escapes the group is found by it.
MARK = "TEMPLATE_UPDATE_GROUP"


ROOM = 1 << 20  # bytes left free, beyond what the last step writes, on each disk it writes to (git's lock files)
# Bytes free below which a disk is too full for an update's scratch work (some tens of MB at its peak): what failed
# is put down to it, as the tools that failed may not say so (git: "Could not reset index file"), and have freed
# what they wrote by the time the failure is known.
LOW = 64 << 20


class NoRoom(Exception):
    "A disk the update is to be applied to has too little space left: raised before the point of no return."


class PartlyApplied(Exception):
    """The last step failed half way (a disk filled meanwhile): some of the fork's files are the update's, its branch
    and index are as they were."""


class Interrupted(BaseException):
    """Ctrl-C, or a SIGTERM or SIGHUP: the update stops where it is (a BaseException, as KeyboardInterrupt is, so
    that no `except Exception` in a library swallows it)."""


def interrupt(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop the update as Ctrl-C does, so that every cleanup runs."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


@contextmanager
def deferred_signals():
    """Holds Ctrl-C, SIGTERM and SIGHUP while the block runs, so the fork is never left half-applied; yields the list
    of those that arrived, for the caller to stop on once the block is done."""
    arrived = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: arrived.append(signal.Signals(signum).name))
    try:
        yield arrived
    finally:
        stop_on_signals()


@contextmanager
def process_group(command: list[str], **popen):
    """Runs command in a process group of its own; however the block ends, the group is stopped: SIGINT first, as a
    Ctrl-C would, then SIGKILL for whatever is left, and for what it started in a session of its own."""
    mark = uuid4().hex
    process = subprocess.Popen(command, process_group=0, env=os.environ | {MARK: mark}, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            signal_group(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                pass
        signal_group(process.pid, signal.SIGKILL)
        process.wait()
        kill_marked(mark)


def signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass  # the group is gone already


def kill_marked(mark: str) -> None:
    """Kills every process whose environment carries mark: those that left the group with setsid."""
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == mark:
                process.kill()
        except psutil.Error:
            continue  # gone already, or another user's, whose environment is not ours to read


def too_full(*folders: Path) -> str:
    "Which disk, of those holding folders, is too full for an update's work, as a phrase, or ''."
    for folder in folders:
        if (free := shutil.disk_usage(folder).free) < LOW:
            return f"the disk holding {folder} has only {free / 1e6:.1f} MB free"
    return ""


def untracked_files(root: Path) -> set[str]:
    """Files git does not track (ignored ones too: data, logs, secrets), but for the environment."""
    listing = git("ls-files", "-z", "--others", "--exclude", f"/{NOT_COPIED}", cwd=root)
    return {path for path in listing.split("\0") if path}


def same_file(one: Path, other: Path) -> bool:
    return one.is_symlink() == other.is_symlink() and (
        os.readlink(one) == os.readlink(other) if one.is_symlink() else one.read_bytes() == other.read_bytes())


class Scratch:
    """A worktree of the fork's HEAD, with copies of its untracked files (migrations move data), where the update is
    worked out; `apply` makes the fork what the scratch has become."""

    def __init__(self, fork: Path):
        self.fork = fork
        self.dir = Path(tempfile.mkdtemp(prefix="template-update-"))
        self.work = self.dir / "fork"
        try:
            git("worktree", "prune", cwd=fork)  # one an update killed outright left behind
            git(*NO_HOOKS, "worktree", "add", "--quiet", "--detach", str(self.work), "HEAD", cwd=fork)
            self.untracked = untracked_files(fork)
            for path in self.untracked:
                (self.work / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(fork / path, self.work / path, follow_symlinks=False)
        except Exception as error:
            full = self.full()
            self.remove()
            if full:
                raise NoRoom(full) from error
            raise
        except BaseException:
            self.remove()
            raise

    def full(self) -> str:
        "Which disk of the update's (the scratch's, the fork's) is too full for it, as a phrase, or ''."
        return too_full(self.dir.parent, self.fork)

    def remove(self) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", "--force", str(self.work)], cwd=self.fork,
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def result_tree(self) -> str:
        """The scratch's files as a git tree: what the fork's tracked files become (new ones included)."""
        index = self.dir / "result-index"
        env = os.environ | {"GIT_INDEX_FILE": str(index)}
        for args in (["read-tree", "HEAD"], ["add", "--all"]):
            subprocess.run(["git", *NO_HOOKS, *args], cwd=self.work, env=env, check=True, capture_output=True)
        return subprocess.run(["git", "write-tree"], cwd=self.work, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def untracked_changes(self, tree: str) -> tuple[list[str], list[str]]:
        """What the update did to files git does not track (a migration moving the database): (written, removed)."""
        result = set(git("ls-tree", "-r", "-z", "--name-only", tree, cwd=self.work).split("\0"))
        now = untracked_files(self.work) - result
        written = sorted(path for path in now if path not in self.untracked or
                         not same_file(self.fork / path, self.work / path))
        return written, sorted(self.untracked - now - result)

    def room(self, tree: str, written: list[str]) -> None:
        """Raises NoRoom unless each disk the last step writes to has room for what it writes there: the files the
        result changes or adds, and the data migrations wrote."""
        def files(ref: str) -> dict[str, tuple[str, int]]:  # path: (object, size)
            listing = {}
            for entry in filter(None, git("ls-tree", "-r", "-l", "-z", ref, cwd=self.work).split("\0")):
                about, path = entry.split("\t", 1)
                _, _, oid, size = about.split()
                listing[path] = (oid, 0 if size == "-" else int(size))  # "-": a submodule
            return listing
        before = files("HEAD")
        changed = {path: size for path, (oid, size) in files(tree).items() if before.get(path, ("",))[0] != oid}
        changed |= {path: (self.work / path).lstat().st_size for path in written}
        needed, where = defaultdict(int), {}
        for path, size in changed.items():
            folder = (self.fork / path).parent
            while not folder.exists():
                folder = folder.parent
            device = folder.stat().st_dev
            needed[device] += size
            where.setdefault(device, folder)
        for device, folder in where.items():
            if (free := shutil.disk_usage(folder).free) < needed[device] + ROOM:
                raise NoRoom(f"the disk holding {folder} has {free / 1e6:.1f} MB free, and the update writes "
                             f"{needed[device] / 1e6:.1f} MB there")

    def apply(self) -> list[str]:
        """The point of no return: one git read-tree makes the fork's tracked files the result (new files included),
        its index becomes the scratch's (unchanged files and the conflicts to resolve), and what migrations did to
        untracked files follows. What can be written aside first is (the index, the data), and the disks' room is
        checked, so that only the read-tree writes in place. Signals wait until it is done: returns those that
        arrived."""
        tree = self.result_tree()
        written, removed = self.untracked_changes(tree)
        self.room(tree, written)
        staged = git("ls-files", "--stage", "-z", cwd=self.work).encode()
        index = Path(git("rev-parse", "--git-path", "index", cwd=self.fork).strip())
        index = index if index.is_absolute() else self.fork / index
        staging = index.with_name("index.update")
        aside = {path: self.fork / f"{path}.template-update" for path in written}
        try:
            staging.unlink(missing_ok=True)
            subprocess.run(["git", "update-index", "-z", "--index-info"], cwd=self.fork, input=staged, check=True,
                           capture_output=True, env=os.environ | {"GIT_INDEX_FILE": str(staging)})
            for path, copy in aside.items():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.work / path, copy, follow_symlinks=False)
            with deferred_signals() as arrived:
                try:
                    git(*NO_HOOKS, "read-tree", "-m", "-u", "HEAD", tree, cwd=self.fork)
                except subprocess.CalledProcessError as error:
                    if git("status", "--porcelain", cwd=self.fork):  # it wrote some files before it failed
                        raise PartlyApplied(error.stderr.decode(errors="replace").strip().splitlines()[-1]) from error
                    raise
                os.replace(staging, index)
                for path, copy in aside.items():
                    os.replace(copy, self.fork / path)
                for path in removed:
                    (self.fork / path).unlink(missing_ok=True)
                subprocess.run(["git", "update-index", "-q", "--refresh"], cwd=self.fork, capture_output=True)
        finally:
            for copy in [staging, *aside.values()]:
                copy.unlink(missing_ok=True)
        return arrived
