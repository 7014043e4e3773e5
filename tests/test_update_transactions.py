"""`./run update` is a transaction: worked out in a scratch worktree, applied to the fork in one step. A template
history with binary files (one the template repaints, one it renames, one it never changes), a deleted file and a
migration at v0.2.0 that tells when it runs (it writes its process id to a file), and fails or holds on demand; forks
of v0.1.0 that changed those files take two releases at once. A failed migration and Ctrl-C before the point of no
return leave the fork byte for byte as it was, with no process left; past it, the fork has the whole update."""

import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from template_tools import commit_all, git, snapshot
from test_update import ENV, answers, append, fork_of, insert_after_first_line, release, run, unmerged

PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256))
NEWEST = "v0.3.0"
MIGRATION = """  - version: "0.2.0"
    command: >-
      echo $$ > "$UPDATE_TEST_MARKS/{{ _stage }}";
      if [ "$UPDATE_TEST_FAIL" = {{ _stage }} ]; then echo "The migration failed on purpose." >&2; exit 1; fi;
      if [ "$UPDATE_TEST_HOLD" = {{ _stage }} ]; then exec sleep 600; fi;
      if [ "$UPDATE_TEST_FILL" = {{ _stage }} ]; then cat /dev/zero > "$TMPDIR/disk-filler" 2>/dev/null; fi; true
    when: "{{ _stage in ['before', 'after'] }}"
"""


def picture(tag: str) -> bytes:
    return PNG + tag.encode()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    repo = snapshot(tmp_path_factory.mktemp("template"))
    static = repo / "template/static"
    for name in ("logo", "icon", "badge"):
        (static / f"{name}.png").write_bytes(picture(f"template's {name}"))
    release(repo, "0.1.0")
    (static / "logo.png").write_bytes(picture("template's new logo"))
    (static / "badge.png").rename(static / "brand.png")
    (repo / "template/.pre-commit-config.yaml").unlink()
    copier_yml = (repo / "copier.yml").read_text()
    (repo / "copier.yml").write_text(copier_yml.replace("\n_migrations:\n", f"\n_migrations:\n{MIGRATION}", 1))
    release(repo, "0.2.0")
    insert_after_first_line(repo / "template/run.jinja", "# Upstream change in 0.3.0.")
    release(repo, "0.3.0")
    return SimpleNamespace(repo=repo)


def customised(template, path: Path) -> SimpleNamespace:
    """A pipulate fork of v0.1.0 that repainted the three pictures, edited a file v0.2.0 deletes and keeps data of
    its own."""
    fork = fork_of(template, path, "v0.1.0", flavour="pipulate")
    mine = {".pre-commit-config.yaml": (fork / ".pre-commit-config.yaml").read_bytes() + b"# Acme's hook\n"}
    mine |= {f"static/{name}.png": picture(f"Acme's {name}") for name in ("logo", "icon", "badge")}
    for name, content in mine.items():
        (fork / name).write_bytes(content)
    (fork / "data").mkdir(exist_ok=True)
    (fork / "data/acme.csv").write_text("id,name\n1,Acme\n")
    commit_all(fork, "Customise")
    return SimpleNamespace(fork=fork, mine=mine)


def state(fork: Path) -> tuple:
    """The branch, the index and every file (data too), byte for byte: what an update that stops must not change."""
    files = {path.relative_to(fork).as_posix(): path.read_bytes() for path in fork.rglob("*")
             if path.is_file() and not {".git", ".venv", "__pycache__", ".pytest_cache"} & set(path.parts)}
    return git(fork, "rev-parse", "HEAD"), git(fork, "ls-files", "--stage"), files


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_for(condition, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.1)


def interrupted(fork: Path, marks: Path, when, *args: str, env: dict | None = None) -> SimpleNamespace:
    """Starts ./run update, sends it SIGINT once when() is true, and returns how it ended."""
    log = marks / "stderr"
    with log.open("w") as stderr:
        update = subprocess.Popen([str(fork / "run"), "update", "--trust", *args], cwd=fork, stderr=stderr,
                                  stdout=subprocess.DEVNULL, env=ENV | {"UPDATE_TEST_MARKS": str(marks)} | (env or {}))
        try:
            wait_for(lambda: when(log.read_text()) or update.poll() is not None, "the phase")
            update.send_signal(signal.SIGINT)
            status = update.wait(timeout=120)
        finally:
            update.kill()
    pids = [int(mark.read_text()) for mark in marks.glob("*") if mark.name != "stderr"]
    return SimpleNamespace(status=status, stderr=log.read_text(), pids=pids)


def marked(marks: Path, name: str):
    return lambda stderr: (marks / name).exists()


NOTHING_CHANGED = "before the update was applied: nothing was changed, this fork is as it was."


@pytest.fixture(scope="module")
def binary(template, tmp_path_factory):
    """The pipulate fork, taken to v0.3.0 after a failed migration and Ctrl-C at three moments left it as it was."""
    path = tmp_path_factory.mktemp("binary")
    fork = customised(template, path / "fork")
    marks = path / "marks"
    marks.mkdir()
    env = ENV | {"UPDATE_TEST_MARKS": str(marks)}
    fork.before = state(fork.fork)
    fork.failed = run(fork.fork, "update", "--trust", "--no-test", env=env | {"UPDATE_TEST_FAIL": "after"})
    fork.after_failure = state(fork.fork)
    fork.stops = {}
    for phase, when, hold in (("before render", lambda stderr: "Updating from template" in stderr, ""),
                              ("during copier", marked(marks, "before"), "before"),
                              ("during a migration", marked(marks, "after"), "after")):
        for mark in marks.glob("*"):
            mark.unlink()
        stop = interrupted(fork.fork, marks, when, "--no-test", env={"UPDATE_TEST_HOLD": hold})
        fork.stops[phase] = SimpleNamespace(stop=stop, state=state(fork.fork))
    fork.preview = run(fork.fork, "update", "--trust", "--dry-run", env=env)
    fork.after_preview = state(fork.fork)
    fork.result = run(fork.fork, "update", "--trust", "--no-test", env=env)
    return fork


def test_a_failed_migration_leaves_the_fork_as_it_was_and_says_so(binary):
    assert binary.failed.returncode == 1, binary.failed.stderr
    assert "The migration failed on purpose." in binary.failed.stderr
    assert "Nothing was changed: the update stopped before it was applied, and this fork is as it was." \
        in binary.failed.stderr and "Traceback" not in binary.failed.stderr
    assert binary.after_failure == binary.before


@pytest.mark.parametrize("phase", ["before render", "during copier", "during a migration"])
def test_ctrl_c_before_the_point_of_no_return_leaves_the_fork_as_it_was(binary, phase):
    stopped = binary.stops[phase]
    assert stopped.stop.status == 130, stopped.stop.stderr
    assert f"Interrupted (SIGINT) {NOTHING_CHANGED}" in stopped.stop.stderr
    assert "Traceback" not in stopped.stop.stderr
    assert stopped.state == binary.before
    assert [pid for pid in stopped.stop.pids if alive(pid)] == []
    assert not git(binary.fork, "worktree", "list", "--porcelain").count("\nworktree ")


def test_dry_run_lists_each_file_and_changes_nothing(binary):
    assert binary.preview.returncode == 0, binary.preview.stderr
    assert binary.after_preview == binary.before
    listed = {path: what for what, path in re.findall(r"^  (\S.*?\S) {2,}(\S+)", binary.preview.stdout, re.M)}
    assert {path: listed.get(path) for path in ("static/icon.png", "static/logo.png", "static/brand.png", "run",
                                                ".pre-commit-config.yaml", "server.py")} == {
        "static/icon.png": "yours kept", "static/logo.png": "conflict", "static/brand.png": "conflict",
        "run": "the template's", ".pre-commit-config.yaml": "conflict", "server.py": "unchanged"}
    assert f"That is what updating to template {NEWEST} would do (--dry-run): nothing was changed." \
        in binary.preview.stderr


def test_a_binary_file_only_the_fork_changed_keeps_the_fork_bytes(binary):
    assert (binary.fork / "static/icon.png").read_bytes() == binary.mine["static/icon.png"]


def test_a_binary_file_both_changed_is_a_conflict_that_keeps_both(binary):
    assert binary.result.returncode == 1
    assert (binary.fork / "static/logo.png").read_bytes() == binary.mine["static/logo.png"]
    assert (binary.fork / "static/logo.png.template").read_bytes() == picture("template's new logo")
    assert ("static/logo.png: changed by you and by the template, and a binary file cannot be merged: yours is in "
            "place, the template's beside it as static/logo.png.template.") in binary.result.stderr
    assert "static/logo.png" in unmerged(binary.fork)


def test_a_binary_file_the_template_renamed_keeps_the_fork_bytes_under_the_new_name(binary):
    assert (binary.fork / "static/brand.png").read_bytes() == binary.mine["static/badge.png"]
    assert not (binary.fork / "static/badge.png").exists()
    assert "static/badge.png -> static/brand.png: renamed by the template" in binary.result.stderr


def test_a_file_the_template_deleted_is_kept_after_a_multi_release_update(binary):
    assert answers(binary.fork)["_commit"] == NEWEST
    assert (binary.fork / ".pre-commit-config.yaml").read_bytes() == binary.mine[".pre-commit-config.yaml"]
    assert (binary.fork / "data/acme.csv").read_text() == "id,name\n1,Acme\n"


def test_drift_lists_a_binary_difference(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", NEWEST, flavour="pipulate")
    (fork / "static/icon.png").write_bytes(picture("Acme's icon"))
    result = run(fork, "drift")
    assert result.returncode == 1
    assert "Binary file static/icon.png differs from the template's" in result.stdout


def test_a_changed_file_a_flavour_switch_leaves_out_is_kept_and_the_switch_named(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", NEWEST, flavour="pipulate")
    append(fork / "server.py", "# Acme's route\n")
    commit_all(fork, "Customise")
    result = run(fork, "update", "--no-test", "--vcs-ref=:current:", "-d", "flavour=darwinix")
    assert result.returncode == 1, result.stderr
    assert "server.py: left out by your answer change (flavour pipulate -> darwinix" in result.stderr
    assert "deleted by the template" not in result.stderr
    assert (fork / "server.py").read_text().endswith("# Acme's route\n")


HOLDING_TEST = '''"""Stands for a fork test that starts a server in a session of its own, out of the update's process
group, and never stops it: it holds until the update's Ctrl-C reaches it."""

import os
import subprocess
import tempfile
import time


def test_holds_with_a_server_running():
    server = subprocess.Popen(["sleep", "600"], start_new_session=True)
    for name, pid in (("pytest", os.getpid()), ("server", server.pid)):
        with open(os.path.join(os.environ["UPDATE_TEST_MARKS"], name), "w") as mark:
            mark.write(str(pid))
    time.sleep(600)
'''


# Runs a command with a folder on a filesystem of its own, SIZE big, its files copied in through HELD: a tmpfs
# mounted in a mount namespace of the command's own, which a user may make in a user namespace of its own (no
# privilege needed; Ubuntu's AppArmor allows it once kernel.apparmor_restrict_unprivileged_userns=0, as CI sets).
ON_A_SMALL_DISK = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                   'cp -a "$2/." "$3" && mount -t tmpfs -o "size=$1" tmpfs "$2" && cp -a "$3/." "$2" && shift 3 && '
                   'exec "$@"', "sh"]


def on_a_small_disk(fork: Path, size: str, folder: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    held = Path(tempfile.mkdtemp(dir=folder.parent.parent))
    return subprocess.run([*ON_A_SMALL_DISK, size, str(folder), str(held), *args], cwd=fork, capture_output=True,
                          text=True, timeout=1800, env=ENV | env)


def small_disk_possible(scratch: Path) -> str:
    "Why a folder cannot be put on a small filesystem here, or '' when it can."
    probe = on_a_small_disk(scratch, "1m", scratch, "true", env={})
    return "" if probe.returncode == 0 else f"no tmpfs of one's own here (unshare: {probe.stderr.strip()})"


def room_for(folder: Path, more: int) -> str:
    "A tmpfs size that holds folder's files (a page each at least) and more bytes."
    pages = sum(-(-path.stat().st_size // 4096) for path in folder.rglob("*") if path.is_file())
    return f"{pages * 4 + more // 1024}k"


@pytest.fixture(scope="module")
def full(template, tmp_path_factory):
    """A fork of v0.1.0 whose update meets a full disk: the scratch area's, too small to start, or filled by the
    migration's first stage while copier works; or the fork's static/, with too little room for the last step."""
    path = tmp_path_factory.mktemp("full")
    if why := small_disk_possible(path):
        pytest.skip(why)
    fork = customised(template, path / "fork")
    assert run(fork.fork, "setup").returncode == 0  # its .venv, which the update does not copy
    marks = path / "marks"
    marks.mkdir()
    fork.before = state(fork.fork)
    fork.stops, fork.scratch = {}, {}
    update = [str(fork.fork / "run"), "update", "--trust", "--no-test"]
    for moment, size, fill in (("at the start", "256k", ""), ("during copier", "64m", "before")):
        scratch = path / f"scratch-{moment.replace(' ', '-')}"
        scratch.mkdir()
        fork.scratch[moment] = scratch
        stop = on_a_small_disk(fork.fork, size, scratch, *update, env={
            "TMPDIR": str(scratch), "UPDATE_TEST_MARKS": str(marks), "UPDATE_TEST_FILL": fill})
        fork.stops[moment] = SimpleNamespace(update=stop, state=state(fork.fork))
    static = fork.fork / "static"
    stop = on_a_small_disk(fork.fork, room_for(static, 512 * 1024), static, *update,
                           env={"UPDATE_TEST_MARKS": str(marks)})
    fork.stops["at the last step"] = SimpleNamespace(update=stop, state=state(fork.fork))
    return fork


@pytest.mark.parametrize("moment", ["at the start", "during copier"])
def test_a_full_disk_before_the_point_of_no_return_leaves_the_fork_as_it_was(full, moment):
    stopped = full.stops[moment]
    assert stopped.update.returncode == 1, stopped.update.stderr
    assert stopped.state == full.before
    assert re.search(rf"The update failed before it was applied \(the disk holding {full.scratch[moment]} has only "
                     r"\d+\.\d MB free\): nothing was changed, this fork is as it was\. Free some space, then run "
                     r"\./run update again\.", stopped.update.stderr), stopped.update.stderr
    assert "Traceback" not in stopped.update.stderr


def test_a_disk_without_room_for_the_last_step_leaves_the_fork_as_it_was(full):
    stopped = full.stops["at the last step"]
    assert stopped.update.returncode == 1, stopped.update.stderr
    assert stopped.state == full.before
    assert re.search(rf"The update failed before it was applied \(the disk holding {full.fork}/static has 0\.\d MB "
                     r"free, and the update writes 0\.0 MB there\): nothing was changed", stopped.update.stderr)
    assert "Traceback" not in stopped.update.stderr


def test_ctrl_c_after_the_merge_and_during_the_tests_leaves_the_whole_update(template, tmp_path):
    fork = fork_of(template, tmp_path / "fork", "v0.1.0", flavour="darwinix")
    (fork / "tests/test_000_hold.py").write_text(HOLDING_TEST)
    commit_all(fork, "A test that holds")
    marks = tmp_path / "marks"
    marks.mkdir()
    before = state(fork)
    # After the merge (the migration's last stage has run): the update is either not applied or applied whole.
    stop = interrupted(fork, marks, marked(marks, "after"), "--no-test")
    if f"Interrupted (SIGINT) {NOTHING_CHANGED}" in stop.stderr:
        assert state(fork) == before
    else:
        assert answers(fork)["_commit"] == NEWEST and "Upstream change in 0.3.0" in (fork / "run").read_text()
        git(fork, "reset", "--hard")
        git(fork, "clean", "-fd")
    assert state(fork) == before
    # During the tests: past the point of no return.
    for mark in marks.glob("*"):
        mark.unlink()
    stop = interrupted(fork, marks, marked(marks, "server"))
    assert stop.status == 130, stop.stderr
    assert ("Interrupted (SIGINT) after the update was applied: the fork has the whole update, not committed and not "
            "tested.") in stop.stderr and "Traceback" not in stop.stderr
    assert answers(fork)["_commit"] == NEWEST and "Upstream change in 0.3.0" in (fork / "run").read_text()
    assert unmerged(fork) == [] and git(fork, "rev-parse", "HEAD") == before[0]
    assert len(stop.pids) == 4 and [pid for pid in stop.pids if alive(pid)] == []
