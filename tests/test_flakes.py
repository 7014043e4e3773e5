"""Every flake parses and every devShell evaluates on every system, and the shells do what they promise.

Evaluation runs against tests/nixpkgs-stub, a stand-in for nixpkgs holding exactly the attributes the flakes use,
so a misspelled package or attribute fails here, offline. The shell hooks are then run in bash with a fake ./run.
"""

import json
import os
import shutil
import subprocess

import pytest

from template_tools import FLAVOURS, QUESTIONS, ROOT, render

STUB = ROOT / "tests" / "nixpkgs-stub"
SYSTEMS = {"x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"}
FORK_SHELLS = {"default", "dev", "quiet"}
# Nothing is built, so root in a container needs no build users and no sandbox. Nix 2.8's eval cache garbles
# strings that refer to several derivations (shellHook) when it reads them back, so it stays off.
NIX_CONFIG = "experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\neval-cache = false"
NIX_ENV = {**os.environ, "NIX_CONFIG": NIX_CONFIG}


@pytest.fixture(autouse=True, scope="module")
def nix():
    if shutil.which("nix") is None:
        reason = "nix is not installed (Debian: apt-get install nix-bin), so the flakes cannot be evaluated"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def forks(tmp_path_factory):
    """Renders each (flavour, python_version) once for the whole module."""
    rendered = {}

    def fork(flavour, python_version=QUESTIONS["python_version"]["default"]):
        if (flavour, python_version) not in rendered:
            dst = tmp_path_factory.mktemp(f"{flavour}-{python_version}")
            rendered[flavour, python_version] = render(dst, flavour=flavour, python_version=python_version)
        return rendered[flavour, python_version]

    return fork


def nix_eval(flake_dir, attribute, *args):
    """`nix eval` of flake_dir#attribute with nixpkgs swapped for the stub; returns the CompletedProcess."""
    return subprocess.run(
        ["nix", "eval", f"path:{flake_dir}#{attribute}", "--override-input", "nixpkgs", f"path:{STUB}",
         "--no-write-lock-file", *args],
        capture_output=True, text=True, env=NIX_ENV, timeout=120)


def evaluate_json(flake_dir, attribute, *args):
    result = nix_eval(flake_dir, attribute, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def every_shell(flake_dir, expression):
    """{system: {shell name: expression}} for every devShell, with `shell` bound to the shell's derivation."""
    return evaluate_json(flake_dir, "devShells", "--apply",
                         f"builtins.mapAttrs (system: builtins.mapAttrs (name: shell: {expression}))")


def dev_shells(flake_dir):
    """Parses flake.nix and evaluates every devShell of every system to its .drv path."""
    parsed = subprocess.run(["nix-instantiate", "--parse", flake_dir / "flake.nix"], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    return every_shell(flake_dir, "shell.drvPath")


def assert_evaluated(shells, names):
    assert set(shells) == SYSTEMS
    for system, by_name in shells.items():
        assert set(by_name) == names, system
        assert all(path.endswith(".drv") for path in by_name.values())


@pytest.fixture
def gpu_bin(tmp_path):
    """A PATH directory with an nvidia-smi, as on a machine with an NVIDIA GPU."""
    (tmp_path / "gpu-bin").mkdir()
    (tmp_path / "gpu-bin" / "nvidia-smi").write_text("#!/bin/sh\n")
    (tmp_path / "gpu-bin" / "nvidia-smi").chmod(0o755)
    return tmp_path / "gpu-bin"


def run_hook(fork, shell, tmp_path, numpy_imports=True, path_extra=()):
    """Runs a shell's x86_64-linux shellHook in bash, in a directory whose ./run and .venv/bin/python only log."""
    hook = evaluate_json(fork, f"devShells.x86_64-linux.{shell}.shellHook")
    work = tmp_path / "fork"
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / "run").write_text('#!/bin/sh\necho "run $*" >> calls.log\n')
    (work / ".venv" / "bin" / "python").write_text(
        '#!/bin/sh\necho "python $*" >> calls.log\n'
        + ("" if numpy_imports else "echo 'ImportError: libstdc++.so.6: cannot open shared object file' >&2; exit 1\n"))
    for script in (work / "run", work / ".venv" / "bin" / "python"):
        script.chmod(0o755)
    env = {"PATH": os.pathsep.join([*map(str, path_extra), "/usr/bin", "/bin"]), "HOME": str(tmp_path)}
    result = subprocess.run(["bash", "-c", hook], cwd=work, env=env, capture_output=True, text=True, timeout=30)
    calls = (work / "calls.log").read_text().splitlines() if (work / "calls.log").exists() else []
    return result, calls


# Evaluation -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_fork_flake_evaluates_every_shell_on_every_system(flavour, forks):
    assert_evaluated(dev_shells(forks(flavour)), FORK_SHELLS)


@pytest.mark.parametrize("python_version", QUESTIONS["python_version"]["choices"])
def test_fork_shell_python_follows_the_answer(python_version, forks):
    fork = forks("darwinix", python_version)
    assert_evaluated(dev_shells(fork), FORK_SHELLS)
    for by_name in every_shell(fork, "shell.PYTHON").values():
        assert all(python.endswith(f"-python3-{python_version}/bin/python3") for python in by_name.values())


def test_template_flake_evaluates_on_every_system(tmp_path):
    shutil.copy(ROOT / "flake.nix", tmp_path / "flake.nix")
    assert_evaluated(dev_shells(tmp_path), {"default"})


def test_description_with_nix_syntax_stays_a_plain_string(tmp_path):
    description = 'Say "hi" to ${HOME} \\ and <b>'
    fork = render(tmp_path / "fork", flavour="darwinix", description=description)
    result = subprocess.run(["nix-instantiate", "--eval", "--json", "-E", f"(import {fork}/flake.nix).description"],
                            capture_output=True, text=True, env=NIX_ENV)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == description


def test_misspelled_package_in_local_nix_fails_evaluation(forks, tmp_path):
    fork = shutil.copytree(forks("darwinix"), tmp_path / "fork")
    (fork / "local.nix").write_text("{ pkgs }: { packages = [ pkgs.pyhton312 ]; }\n")
    result = nix_eval(fork, "devShells.x86_64-linux.quiet.drvPath")
    assert result.returncode != 0
    assert "attribute 'pyhton312' missing" in result.stderr


def test_local_nix_adds_packages_to_every_shell(forks, tmp_path):
    fork = shutil.copytree(forks("pipulate"), tmp_path / "fork")
    (fork / "local.nix").write_text("{ pkgs }: { packages = [ pkgs.zlib ]; }\n")
    for by_name in every_shell(fork, "map (package: package.name) shell.packages").values():
        for names in by_name.values():
            assert {"zlib", "git", "uv"} <= set(names)


def test_wheel_libraries_are_on_ld_library_path_on_linux_only(forks):
    fork = forks("darwinix")
    assert "-gcc-lib/lib:" in evaluate_json(fork, "devShells.x86_64-linux.quiet.shellHook")
    assert "-gcc-lib/lib" not in evaluate_json(fork, "devShells.aarch64-darwin.quiet.shellHook")


# What the shells do at start --------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_default_shell_sets_up_then_starts(flavour, forks, tmp_path):
    result, calls = run_hook(forks(flavour), "default", tmp_path)
    assert result.returncode == 0, result.stderr
    canary = ["python -c import numpy"] if flavour == "darwinix" else []
    assert calls == ["run setup", *canary, "run start"]


def test_dev_shell_sets_up_and_starts_nothing(forks, tmp_path):
    result, calls = run_hook(forks("darwinix"), "dev", tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == ["run setup", "python -c import numpy"]


def test_quiet_shell_is_silent_and_runs_nothing(forks, tmp_path, gpu_bin):
    result, calls = run_hook(forks("darwinix"), "quiet", tmp_path, path_extra=[gpu_bin])
    assert (result.returncode, result.stdout, result.stderr, calls) == (0, "", "", [])


def test_numpy_canary_failure_explains_and_stops_the_start(forks, tmp_path):
    result, calls = run_hook(forks("darwinix"), "default", tmp_path, numpy_imports=False)
    assert calls == ["run setup", "python -c import numpy"]
    assert "ImportError: libstdc++.so.6" in result.stderr
    assert "numpy does not import in .venv" in result.stderr and "LD_LIBRARY_PATH=" in result.stderr


def test_cuda_is_detected_at_shell_start(forks, tmp_path, gpu_bin):
    result, calls = run_hook(forks("pipulate"), "dev", tmp_path, path_extra=[gpu_bin])
    assert "NVIDIA GPU found" in result.stderr
    assert calls == ["run setup"]


def test_local_nix_shell_hook_runs_before_setup(forks, tmp_path):
    fork = shutil.copytree(forks("pipulate"), tmp_path / "fork-src")
    (fork / "local.nix").write_text('{ pkgs }: { shellHook = "echo local >> calls.log"; }\n')
    result, calls = run_hook(fork, "default", tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == ["local", "run setup", "run start"]
