"""A fork's improvement of the template's own files goes back to the template with `./run upstream`, and from there
to every sibling fork with `scripts/adopt`, a release and their `./run update`. Each test works on its own copy of
the template, released as v0.1.0, and forks rendered from it through copier's API.

The round trip: a botifython fork improves server.py and core/chat/history.py (a helper and the route that uses
it), the template's test of that route, and its README (a rendered file); it also has data, secrets, settings and a
plugin of its own, which must stay behind. Its patch is adopted on a branch, released, and taken by a pipulate and a
darwinix fork. scripts/adopt runs once, on a narrowed selection of tests (-k) to keep this module fast."""

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from template_tools import COMMITTER, commit_all, git, render, snapshot

# The forks' ./run setup takes uv from the template's own tools; the commits made have a fixed identity.
ENV = os.environ | COMMITTER | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
CARRIED = ["template/README.md.jinja", "template/core/chat/history.py", "template/server.py",
           "template/tests/test_server_routes.py"]
SUMMARY_TEST = "test_the_profiles_summary_counts_profiles_and_messages"
NEW_README_LINE = "./run test -x        # stop at the first failure"
OWN = {"settings.toml": 'name = "Acme Bench"\n',
       "plugins/500_acme.py": 'NAME, DISPLAY_NAME = "acme", "Acme"\n\n\ndef setup(plugin):\n    plugin.page(lambda: "Acme")\n'}
NEVER_TOUCHED = {"data/acme.csv": "id,name\n1,Acme\n", ".sesskey": "acme-session-key\n",
                 "botify_token.txt": "acme-botify-token\n"}


def run(cwd: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=1800)


def substitute(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} should occur once in {path}"
    path.write_text(text)


def released_template(path: Path, files: dict[str, str] | None = None) -> Path:
    """A copy of the template as it is now, with files of the test's own if given, released as v0.1.0. scripts/adopt
    runs in it with the template's own tools: its .venv is the one running these tests."""
    repo = snapshot(path)
    for name, text in (files or {}).items():
        (repo / name).write_text(text)
    commit_all(repo, "Release 0.1.0")
    git(repo, "tag", "v0.1.0")
    (repo / ".venv").symlink_to(sys.prefix)
    (repo / ".git/info/exclude").write_text("/.venv\n")
    return repo


def fork_of(template: Path, path: Path, flavour: str) -> Path:
    fork = render(path, src=template, vcs_ref="v0.1.0", flavour=flavour)
    commit_all(fork, "Render from the template")
    return fork


def improve(fork: Path) -> None:
    """The botifython fork's improvement: a helper in core/chat/history.py, used by a new route in server.py, the
    template's test of the route, and a line in the README."""
    (fork / "core/chat/history.py").write_text((fork / "core/chat/history.py").read_text() + CHAT_HELPER)
    substitute(fork / "server.py", r"^(from core.chat import Chat)$",
               r"\1\nfrom core.chat.history import conversation_length")
    substitute(fork / "server.py", r'^(if __name__ == "__main__":)$', SUMMARY_ROUTE + r"\1")
    (fork / "tests/test_server_routes.py").write_text((fork / "tests/test_server_routes.py").read_text() + ROUTE_TEST)
    substitute(fork / "README.md", r"^(\./run test +# .*\n)", rf"\1{NEW_README_LINE}\n")


CHAT_HELPER = '''

def conversation_length(messages: list[dict]) -> str:
    "How long a conversation is, in words, counting what the person and the assistant said (not the notes)."
    said = sum(message["role"] in ("user", "assistant") for message in messages)
    return "no messages yet" if not said else f"{said} message{'' if said == 1 else 's'}"
'''
SUMMARY_ROUTE = '''@app.get("/summary")
async def summary():
    "How many profiles there are, and how long the active profile's conversation is."
    chat_length = conversation_length(chat.history(active_profile().id))
    return P(f"{profiles.count} profile(s); the chat: {chat_length}.", id="profiles-summary")


'''
ROUTE_TEST = f'''

def {SUMMARY_TEST}(client):
    assert "1 profile(s); the chat: no messages yet." in client.get("/summary").text
    add_profile(client, "Second")
    assert "2 profile(s)" in client.get("/summary").text
'''


def patch_files(patch: str) -> list[str]:
    return sorted(re.findall(r"^diff --git a/(\S+) ", patch, re.M))


# --- The round trip -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("round-trip")
    template = released_template(tmp / "template")
    forks = {flavour: fork_of(template, tmp / flavour, flavour) for flavour in ("botifython", "pipulate", "darwinix")}
    origin = forks["botifython"]
    improve(origin)
    for path, text in OWN.items():
        (origin / path).write_text(text)
    commit_all(origin, "Improve the template's files, and some of our own")
    for path, text in NEVER_TOUCHED.items():
        (origin / path).parent.mkdir(exist_ok=True)
        (origin / path).write_text(text)
    improved = {path: (origin / path).read_text() for path in ("server.py", "core/chat/history.py", "README.md")}

    upstream = run(origin, "./run", "upstream")
    main = git(template, "rev-parse", "main")
    adopt = run(template, "scripts/adopt", "--test", "-k", f"{SUMMARY_TEST} or test_template_readme_is_sound_markdown",
                str(origin / "upstream.patch"))
    adopted = {"branch": git(template, "branch", "--show-current").strip(), "main": git(template, "rev-parse", "main")}
    git(template, "switch", "--quiet", "main")
    git(template, "merge", "--quiet", "--ff-only", "adopt/upstream")
    git(template, "tag", "v0.2.0")
    updates = {flavour: run(fork, "./run", "update", "--no-test") for flavour, fork in forks.items()}
    return SimpleNamespace(template=template, forks=forks, improved=improved, upstream=upstream,
                           patch=(origin / "upstream.patch").read_text(), main=main, adopt=adopt, adopted=adopted,
                           updates=updates)


def test_upstream_writes_a_patch_naming_the_fork_and_its_release(round_trip):
    assert round_trip.upstream.returncode == 0, round_trip.upstream.stderr
    assert "\nSubject: [PATCH] Port back from Botifython (botifython, template v0.1.0)\n" in round_trip.patch
    assert "not sent" not in round_trip.upstream.stderr
    assert f"In the template's repository: scripts/adopt {round_trip.forks['botifython'] / 'upstream.patch'}" \
           in round_trip.upstream.stderr


def test_the_patch_carries_the_template_files_changed_and_nothing_of_the_forks_own(round_trip):
    assert patch_files(round_trip.patch) == CARRIED
    assert not [text for text in [*OWN.values(), *NEVER_TOUCHED.values()] if text.strip() in round_trip.patch]


def test_plain_copies_map_back_one_to_one(round_trip):
    for path in ("server.py", "core/chat/history.py"):
        assert (round_trip.template / "template" / path).read_text() == round_trip.improved[path]


def test_a_rendered_file_change_goes_into_its_jinja_source(round_trip, tmp_path):
    source = (round_trip.template / "template/README.md.jinja").read_text()
    assert re.search(rf"^\./run test +# .*\n{re.escape(NEW_README_LINE)}\n", source, re.M)
    again = render(tmp_path / "again", src=round_trip.template, vcs_ref="v0.2.0", flavour="botifython")
    assert (again / "README.md").read_text() == round_trip.improved["README.md"]


def test_adopt_works_on_a_branch_and_never_commits_to_main(round_trip):
    assert round_trip.adopt.returncode == 0, round_trip.adopt.stderr
    assert round_trip.adopted == {"branch": "adopt/upstream", "main": round_trip.main}
    assert "On the branch adopt/upstream, off main:" in round_trip.adopt.stderr
    assert "git switch main && git merge adopt/upstream" in round_trip.adopt.stderr


def test_adopt_says_which_flavours_the_change_reaches(round_trip):
    reached = "README.md, core/chat/history.py, server.py, tests/test_server_routes.py"
    assert (f"The change reaches:\n  darwinix: README.md\n  pipulate: {reached}\n  botifython: {reached}\n"
            in round_trip.adopt.stderr)


def test_adopt_runs_every_forks_tests_and_the_templates(round_trip):
    report = round_trip.adopt.stderr
    assert re.search(r"^  darwinix: no test selected", report, re.M)  # -k picks none of its tests
    assert re.search(r"^  pipulate: passed: 1 passed", report, re.M)
    assert re.search(r"^  botifython: passed: 1 passed", report, re.M)
    assert re.search(r"^  the template: passed: 1 passed", report, re.M)
    assert "Nothing broke." in report


def test_siblings_receive_exactly_the_parts_that_apply_to_them(round_trip):
    for flavour in ("pipulate", "darwinix"):
        assert round_trip.updates[flavour].returncode == 0, round_trip.updates[flavour].stderr
    changed = {flavour: sorted(line[3:] for line in git(fork, "status", "--porcelain").splitlines())
               for flavour, fork in round_trip.forks.items() if flavour != "botifython"}
    # The change, and the release each records (in .copier-answers.yml alone: the app reads it from there).
    assert changed == {"pipulate": [".copier-answers.yml", "README.md", "core/chat/history.py", "server.py",
                                    "tests/test_server_routes.py"],
                       "darwinix": [".copier-answers.yml", "README.md"]}
    pipulate, darwinix = round_trip.forks["pipulate"], round_trip.forks["darwinix"]
    assert [(pipulate / path).read_text() == round_trip.improved[path]
            for path in ("server.py", "core/chat/history.py")] == [True, True]
    assert NEW_README_LINE in (pipulate / "README.md").read_text()
    assert NEW_README_LINE in (darwinix / "README.md").read_text() and not (darwinix / "server.py").exists()


def test_the_improvement_works_in_a_sibling(round_trip):
    tests = run(round_trip.forks["pipulate"], "./run", "test", "tests/test_server_routes.py", "-k", SUMMARY_TEST)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "1 passed" in tests.stdout.splitlines()[-1]


def test_the_forks_next_update_is_clean(round_trip):
    update, fork = round_trip.updates["botifython"], round_trip.forks["botifython"]
    assert update.returncode == 0, update.stderr
    assert "conflict" not in update.stderr
    # Its own change came back as it was: only the release it records is new.
    assert git(fork, "status", "--porcelain") == " M .copier-answers.yml\n"
    assert {path: (fork / path).read_text() for path in round_trip.improved} == round_trip.improved


# --- What is not carried, and a fork behind the template -------------------------------------------------------


@pytest.fixture
def template(tmp_path):
    return released_template(tmp_path / "template")


@pytest.fixture
def fork(template, tmp_path):
    return fork_of(template, tmp_path / "fork", "botifython")


def test_a_hunk_on_a_rendered_value_or_a_flavour_block_is_listed_not_applied(fork):
    readme = fork / "README.md"
    substitute(readme, r"^(The app serves on http://127\.0\.0\.1:5001) ", r"\1 by default ")  # app_port
    substitute(readme, r"^## Botify$", "## Botify API")  # the first line of a {% if has_botify %} block
    substitute(readme, r"^(\./run test +# .*\n)", rf"\1{NEW_README_LINE}\n")
    substitute(readme, r"^(## Windows \(WSL\)\n)", r"\1\nBotifython runs in WSL as on Linux.\n")  # project_name
    commit_all(fork, "Improve the README")
    result = run(fork, "./run", "upstream", "README.md")
    assert result.returncode == 0, result.stderr
    assert ("README.md: not sent: its new lines have this fork's app_port (5001), which the template renders from "
            "its answers.\n  Edit template/README.md.jinja by hand, near:\n") in result.stderr
    assert re.search(r"^    template/README\.md\.jinja:\d+: The app serves on http://127\.0\.0\.1:\{\{ app_port }} ",
                     result.stderr, re.M)
    assert "README.md: not sent: its new lines have this fork's project_name (Botifython)" in result.stderr
    assert ("README.md: not sent: its lines are not the source's text: template logic (a flavour block, say) makes "
            "them.") in result.stderr
    assert re.search(r"^    template/README\.md\.jinja:\d+: ## Botify$", result.stderr, re.M)
    patch = (fork / "upstream.patch").read_text()
    assert patch_files(patch) == ["template/README.md.jinja"] and f"+{NEW_README_LINE}\n" in patch
    assert not [text for text in ("by default", "Botify API", "Botifython runs") if text in patch]


LOOP = "{% for part in ('first', 'second') %}\nThe {{ part }} part:\n" + "".join(f"line {n}\n" for n in range(1, 8)) + \
       "{% endfor %}\n"


def test_a_hunk_whose_source_renders_more_than_it_changes_is_left(tmp_path):
    template = released_template(tmp_path / "template", {"template/NOTES.md.jinja": LOOP})
    fork = fork_of(template, tmp_path / "fork", "botifython")
    substitute(fork / "NOTES.md", r"^(The first part:\n(?:.*\n){3}line 4)$", r"\1, improved")
    commit_all(fork, "Improve the first part")
    result = run(fork, "./run", "upstream")
    assert result.returncode == 1
    # The source's loop would improve the second part too.
    assert ("NOTES.md: not sent: applied to the source, it renders otherwise than here: template logic is near.\n"
            "  Edit template/NOTES.md.jinja by hand, near:\n    template/NOTES.md.jinja:6: line 4\n") in result.stderr
    assert "Nothing to send: none of your changes can go to the template as they are (above)." in result.stderr
    assert not (fork / "upstream.patch").exists()


def test_data_secrets_and_files_of_the_forks_own_are_refused_with_the_reason(fork):
    for path, text in {**NEVER_TOUCHED, **OWN}.items():
        (fork / path).parent.mkdir(exist_ok=True)
        (fork / path).write_text(text)
    result = run(fork, "./run", "upstream", *NEVER_TOUCHED, *OWN, ".copier-answers.yml", "server.py")
    assert result.returncode == 1
    assert "Nothing is sent: these are not changes of yours to files the template owns." in result.stderr
    for path in NEVER_TOUCHED:
        assert f"  {path}: never touched by the template: data, logs and secrets stay in this fork\n" in result.stderr
    assert "  settings.toml: yours (fork-owned): the template only scaffolds it" in result.stderr
    assert "  plugins/500_acme.py: not a template file: this fork added it, so it stays this fork's" in result.stderr
    assert "  .copier-answers.yml: copier's record of this fork's answers and release" in result.stderr
    assert "  server.py: the same as template v0.1.0's: nothing to send" in result.stderr
    assert not (fork / "upstream.patch").exists()


def test_a_fork_behind_the_template_sends_what_still_applies_and_lists_the_rest(template, fork):
    # The template moves on: it rewrites the history.py line the fork changes, and adds a line near the fork's README
    # change (which still merges).
    chat = "template/core/chat/history.py"
    substitute(template / chat, r"^(SYSTEM_PROMPT = .*)$", r"\1 (changed by the template)")
    substitute(template / "template/README.md.jinja", r"^(## Test\n)", r"\1\nThe template's new line.\n")
    commit_all(template, "Work after v0.1.0")
    substitute(fork / "core/chat/history.py", r"^(SYSTEM_PROMPT = .*)$", r"\1 (changed by the fork)")
    improve(fork)
    commit_all(fork, "Improve")
    result = run(fork, "./run", "upstream")
    assert result.returncode == 0, result.stderr
    assert "core/chat/history.py: not sent: the template has changed these lines since v0.1.0." in result.stderr
    assert "+SYSTEM_PROMPT = ROOT / \"prompts\" / \"system.md\"  # fork-owned: the fork words its assistant there " \
           "(changed by the fork)" in result.stderr
    patch = (fork / "upstream.patch").read_text()
    assert patch_files(patch) == CARRIED and "Made on template v0.1.0, carried onto v0.1.0-1-g" in patch
    assert "(changed by the fork)" not in patch
    applied = run(template, "git", "am", str(fork / "upstream.patch"))  # no --3way: it is a patch against HEAD
    assert applied.returncode == 0, applied.stderr
    source = (template / "template/README.md.jinja").read_text()
    assert "The template's new line." in source and NEW_README_LINE in source
    assert "(changed by the template)" in (template / chat).read_text()
    assert "def conversation_length" in (template / chat).read_text()


def test_upstream_into_a_clone_commits_on_a_branch_there(template, fork):
    improve(fork)
    (fork / "LICENSE").unlink()
    commit_all(fork, "Improve, and delete the licence")
    main = git(template, "rev-parse", "main")
    result = run(fork, "./run", "upstream", "--into", str(template))
    assert result.returncode == 0, result.stderr
    assert f"Committed on the branch upstream/botifython of {template}, off v0.1.0:" in result.stderr
    assert "LICENSE: not sent: deleted here: a deletion is not sent, as it would delete the file from every fork." \
           in result.stderr
    assert git(template, "rev-parse", "main") == main and git(template, "status", "--porcelain") == ""
    assert git(template, "rev-parse", "upstream/botifython^") == main
    assert git(template, "diff", "--name-only", "main", "upstream/botifython").split() == CARRIED
    assert not (fork / "upstream.patch").exists()


def test_adopt_refuses_a_change_that_does_not_apply_and_leaves_everything_as_it_was(template, fork):
    improve(fork)
    commit_all(fork, "Improve")
    assert run(fork, "./run", "upstream").returncode == 0
    (template / "template/core/chat/history.py").write_text("The template rewrote history.py.\n")
    commit_all(template, "Rewrite history.py")
    head = git(template, "rev-parse", "HEAD")
    result = run(template, "scripts/adopt", str(fork / "upstream.patch"))
    assert result.returncode == 1
    assert f"{fork / 'upstream.patch'} does not apply to main: nothing is changed." in result.stderr
    assert "template/core/chat/history.py" in result.stderr
    assert git(template, "branch", "--show-current") == "main\n" and git(template, "rev-parse", "HEAD") == head
    assert git(template, "branch", "--list", "adopt/*") == "" and git(template, "status", "--porcelain") == ""


def test_adopt_quick_tests_only_the_flavours_a_branch_reaches(template, fork):
    botify = fork / "core/botify.py"
    botify.write_text(botify.read_text() + "\n# The API's reference: developers.botify.com\n")
    commit_all(fork, "Improve botify.py")
    assert run(fork, "./run", "upstream", "--into", str(template)).returncode == 0
    result = run(template, "scripts/adopt", "--test", "--quick", "-k", "no_such_test", "upstream/botifython")
    assert result.returncode == 0, result.stderr
    assert "On the branch adopt/upstream-botifython, off main:" in result.stderr
    assert ("The change reaches:\n  darwinix: nothing (no file it renders changes)\n"
            "  pipulate: nothing (no file it renders changes)\n  botifython: core/botify.py\n") in result.stderr
    assert re.search(r"^  botifython: no test selected", result.stderr, re.M)
    assert "  not run (--quick): darwinix, pipulate (not reached), the template's own tests" in result.stderr
    assert "Testing the template" not in result.stderr


# --- Symbolic links, and code from a change -------------------------------------------------------------------


def test_upstream_never_follows_a_symbolic_link_and_says_why(fork):
    improve(fork)
    (fork / "botify_token.txt").write_text("acme-botify-token\n")
    (fork / "LICENSE").unlink()
    (fork / "LICENSE").symlink_to("botify_token.txt")  # a template file replaced by a link to a secret
    commit_all(fork, "Improve, and link the licence to the token")
    result = run(fork, "./run", "upstream")
    assert result.returncode == 0, result.stderr
    assert ("LICENSE: not sent: a symbolic link here, or inside one: a link is never followed, so what it points to "
            "stays in this fork (make it a plain file to send it).") in result.stderr
    patch = (fork / "upstream.patch").read_text()
    assert patch_files(patch) == CARRIED and "acme-botify-token" not in patch
    named = run(fork, "./run", "upstream", "-o", "named.patch", "LICENSE")
    assert named.returncode == 1 and "  LICENSE: a symbolic link here" in named.stderr
    assert not (fork / "named.patch").exists()


def adopt_refuses(template: Path, change: str, why: str) -> None:
    "scripts/adopt refuses the change with why, and the template is as it was: its branch, its commit, its tree."
    head = git(template, "rev-parse", "HEAD")
    result = run(template, "scripts/adopt", change)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"Refusing to adopt {change}: the template holds files, never symbolic links" in result.stderr
    assert why in result.stderr
    assert git(template, "branch", "--show-current") == "main\n" and git(template, "rev-parse", "HEAD") == head
    assert git(template, "branch", "--list", "adopt/*") == "" and git(template, "status", "--porcelain") == ""


def test_adopt_refuses_a_change_that_makes_a_symbolic_link(template, tmp_path):
    git(template, "switch", "--quiet", "-c", "links")
    (template / "template/token.txt").symlink_to("../botify_token.txt")
    commit_all(template, "Link to the token")
    (tmp_path / "links.patch").write_text(git(template, "format-patch", "-1", "--stdout", "HEAD"))
    git(template, "switch", "--quiet", "main")
    for change in ("links", str(tmp_path / "links.patch")):
        adopt_refuses(template, change, "  template/token.txt: the change makes it a symbolic link")


def test_adopt_refuses_a_patch_that_writes_through_a_symbolic_link(template, tmp_path):
    (template / "template/outside").symlink_to(tmp_path)
    commit_all(template, "A link to a folder outside")
    patch = tmp_path / "through.patch"
    patch.write_text("From: A Fork <fork@localhost>\nSubject: [PATCH] Write outside\n\n---\n"
                     "diff --git a/template/outside/evil.py b/template/outside/evil.py\nnew file mode 100644\n"
                     "--- /dev/null\n+++ b/template/outside/evil.py\n@@ -0,0 +1 @@\n+print('outside')\n")
    adopt_refuses(template, str(patch), "  template/outside/evil.py: template/outside is a symbolic link in the "
                                        "template, which the change would write through")
    assert not (tmp_path / "evil.py").exists()


def test_adopt_shows_a_change_and_runs_its_code_only_with_test(template, fork, tmp_path):
    marker = tmp_path / "the-change-ran"
    tests = fork / "tests/test_server_botify_client.py"  # botifython's alone: --quick tests one fork
    tests.write_text(tests.read_text() + f"\n__import__('pathlib').Path({str(marker)!r}).touch()  # as pytest collects it\n")
    commit_all(fork, "A test module that leaves a mark")
    assert run(fork, "./run", "upstream").returncode == 0
    shown = run(template, "scripts/adopt", str(fork / "upstream.patch"))
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^It changes:\n template/tests/test_server_botify_client\.py +\| +\d+ \++\n 1 file changed, \d+ "
                     r"insertions?\(\+\)\nThe change reaches:\n", shown.stderr, re.M), shown.stderr
    assert "pipulate: nothing (no file it renders changes)\n  botifython: tests/test_server_botify_client.py\n" in shown.stderr
    assert ("Nothing of the change has run: its tests, and every fork's, run its code. Read it (git show "
            "adopt/upstream), then test it: scripts/adopt --test adopt/upstream") in shown.stderr
    assert not marker.exists() and "Testing" not in shown.stderr
    tested = run(template, "scripts/adopt", "--test", "--quick", "-k", "no_such_test", "adopt/upstream")
    assert tested.returncode == 0, tested.stderr
    assert "Running the change's code, as --test asks: every flavour's tests." in tested.stderr
    assert "On the branch adopt/upstream, off main:" in tested.stderr and marker.exists()
