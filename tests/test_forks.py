"""Each flavour, rendered with its defaults, builds its own environment and passes its own test suite, and its ./run
names its commands. The suite runs once per flavour (template_tools.SUITE_AFTER_UPDATE): here on a fresh render for
the flavours whose forks do not run it whole after their update in test_update.py, as a second run would prove
nothing more than that one (a fork of every flavour, customised in every way a fork may be) and take minutes."""

import os
import subprocess
import sys

import pytest

from template_tools import FLAVOURS, SUITE_WHEN_FRESH, render


@pytest.mark.fork_suite
@pytest.mark.parametrize("flavour", SUITE_WHEN_FRESH)
def test_fork_passes_its_own_tests(flavour, tmp_path):
    fork = render(tmp_path / flavour, flavour=flavour)
    result = subprocess.run([str(fork / "run"), "test", "-q", "-p", "no:cacheprovider"], cwd=fork,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
    assert " skipped" not in result.stdout.splitlines()[-1], "the fork's suite skipped tests:\n" + result.stdout[-3000:]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_run_help_names_the_commands(flavour, tmp_path):
    fork = render(tmp_path / flavour, flavour=flavour)
    usage = subprocess.run([str(fork / "run"), "--help"], capture_output=True, text=True, check=True).stdout
    assert "setup" in usage and "test" in usage and "start" in usage
    assert ("app" in usage) == (flavour != "darwinix")
    botify = "BOTIFY_API_URL=http://127.0.0.1:8890 ./run" in usage and "tests/fake_botify.py --port 8890" in usage
    assert botify == (flavour == "botifython")


def test_setup_says_once_that_its_python_is_not_the_one_the_project_asks_for(tmp_path):
    fork = render(tmp_path / "fork", flavour="darwinix", python_version="3.13")
    python = tmp_path / "python3.10"  # a Python that says it is 3.10, and is this one for everything else
    python.write_text(f'#!/bin/sh\ncase "$2" in *version_info*) echo 3.10; exit ;; esac\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    offline = {"PYTHON": str(python), "PIP_NO_INDEX": "1", "UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([str(fork / "run"), "setup"], cwd=fork, env=os.environ | offline, capture_output=True,
                            text=True, timeout=300)  # offline, the install stops at once: the sentence comes before
    sentence = ("Python 3.10 here, the project asks for 3.13 (.copier-answers.yml): install python3.13 or set "
                "PYTHON=/path/to/python3.13; going on with 3.10.\n")
    assert result.stderr.count(sentence) == 1, result.stderr
    assert (fork / ".venv" / "bin" / "python").exists()  # it went on
