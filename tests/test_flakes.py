"""Every flake evaluates on every system it offers, warning-free, with a Nix recent enough for current nixpkgs, and
the shells do what they promise: from a stock Nix with the README's first command, from anywhere in the project,
with the right library path on Linux and macOS, the CUDA driver found without exposing the host's libraries.

Nix is Debian trixie's, installed by scripts/nix (.ci/run does it) with a store of its own. nixpkgs cannot be
fetched here, so every flake is locked to tests/nixpkgs-stub, a stand-in that behaves like nixos-26.11 where it
matters: a misspelled package, a Python 26.11 lacks, x86_64-darwin or a deprecated name fails here as it would
there. Warnings are failures. The hooks run in bash as nix develop runs them, or in a real nix develop.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from template_tools import FLAVOURS, QUESTIONS, ROOT, commit_all, git, render

NIX = ROOT / "scripts" / "nix"
STUB = ROOT / "tests" / "nixpkgs-stub"
NIXPKGS = "github:NixOS/nixpkgs/nixos-26.11"
SYSTEMS = {"x86_64-linux", "aarch64-linux", "aarch64-darwin"}
FORK_SHELLS = {"default", "dev", "quiet"}
# A stock Nix (what scripts/nix is) with flakes switched on, and every evaluation warning an error.
FLAKES = os.environ | {"NIX_CONFIG": "experimental-features = nix-command flakes\nabort-on-warn = true"}
STOCK = {name: value for name, value in os.environ.items() if name != "NIX_CONFIG"}


def nix(*args, env=FLAKES, cwd=None, timeout=300):
    return subprocess.run([NIX, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(autouse=True, scope="module")
def nix_installed():
    version = nix("--version", env=STOCK)
    if version.returncode == 127:
        reason = "Nix is not installed for the tests: run scripts/nix install (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    major, minor = map(int, re.search(r"(\d+)\.(\d+)", version.stdout).groups())
    assert (major, minor) >= (2, 18), f"{version.stdout.strip()}: current nixpkgs needs Nix 2.18 or newer"


def lock(flake_dir: Path) -> Path:
    """Writes flake_dir's flake.lock as its first nix develop would, with nixpkgs locked to the stub."""
    result = nix("flake", "lock", f"path:{flake_dir}", "--override-input", "nixpkgs", f"path:{STUB}")
    assert result.returncode == 0, result.stderr
    assert "creating lock file" in result.stderr and "evaluation warning" not in result.stderr
    return flake_dir


@pytest.fixture(scope="module")
def forks(tmp_path_factory):
    """Renders and locks each (flavour, python_version) once for the whole module."""
    rendered = {}

    def fork(flavour, python_version=QUESTIONS["python_version"]["default"]):
        if (flavour, python_version) not in rendered:
            dst = tmp_path_factory.mktemp(f"{flavour}-{python_version}")
            rendered[flavour, python_version] = lock(render(dst, flavour=flavour, python_version=python_version))
        return rendered[flavour, python_version]

    return fork


@pytest.fixture
def template_flake(tmp_path):
    shutil.copy(ROOT / "flake.nix", tmp_path / "flake.nix")
    return lock(tmp_path)


def copy_of(fork: Path, tmp_path: Path) -> Path:
    return shutil.copytree(fork, tmp_path / "fork", symlinks=True)


def evaluate_json(flake_dir, attribute, *args):
    result = nix("eval", f"path:{flake_dir}#{attribute}", "--json", *args)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    return json.loads(result.stdout)


def every_shell(flake_dir, expression):
    """{system: {shell name: expression}} for every devShell, with `shell` bound to the shell's derivation."""
    return evaluate_json(flake_dir, "devShells", "--apply",
                         f"builtins.mapAttrs (system: builtins.mapAttrs (name: shell: {expression}))")


def assert_evaluated(flake_dir, names):
    shells = every_shell(flake_dir, "shell.drvPath")
    assert set(shells) == SYSTEMS
    for system, by_name in shells.items():
        assert set(by_name) == names, system
        assert all(path.endswith(".drv") for path in by_name.values())


def flake_check(flake_dir):
    """What the fork's CI runs first: nix flake check, here on every system and without building."""
    return nix("flake", "check", f"path:{flake_dir}", "--all-systems", "--no-build")


@pytest.fixture
def gpu_bin(tmp_path):
    """A PATH directory with an nvidia-smi, as on a machine with an NVIDIA GPU."""
    (tmp_path / "gpu-bin").mkdir()
    executable(tmp_path / "gpu-bin" / "nvidia-smi", "#!/bin/sh\n")
    return tmp_path / "gpu-bin"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def logging_project(fork: Path, project: Path, numpy_imports=True) -> Path:
    """A project with the fork's flake whose ./run and .venv/bin/python only log their arguments to calls.log."""
    if (project / "run").exists():
        return project
    project.mkdir(parents=True, exist_ok=True)
    for name in ("flake.nix", "flake.lock", "local.nix"):
        shutil.copy(fork / name, project / name)
    executable(project / "run", f'#!/bin/sh\necho "run $*" >> {project}/calls.log\n')
    failure = "echo 'ImportError: libstdc++.so.6: cannot open shared object file' >&2; exit 1\n"
    executable(project / ".venv" / "bin" / "python", f'#!/bin/sh\necho "python $*" >> {project}/calls.log\n'
               + ("" if numpy_imports else failure))
    return project


def calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def run_hook(fork, shell, tmp_path, system="x86_64-linux", numpy_imports=True, path_extra=(), cwd=None, env=()):
    """Runs a shell's shellHook in bash as nix develop does, in tmp_path/project, a logging copy of the project
    unless it exists already (or in cwd); returns the result, the calls to ./run and python, and LD_LIBRARY_PATH
    after the hook (None if unset)."""
    hook = evaluate_json(fork, f"devShells.{system}.{shell}.shellHook")
    project = logging_project(fork, tmp_path / "project", numpy_imports)
    environment = {"PATH": os.pathsep.join([*map(str, path_extra), "/usr/bin", "/bin"]), "HOME": str(tmp_path),
                   "SHELL_HOOK": hook, **dict(env)}
    script = 'eval "$SHELL_HOOK"; status=$?; echo "${LD_LIBRARY_PATH-(unset)}" > "$HOME/ld-library-path"; exit $status'
    result = subprocess.run(["bash", "-c", script], cwd=cwd or project, env=environment, capture_output=True,
                            text=True, timeout=60)
    ld_library_path = (tmp_path / "ld-library-path").read_text().strip()
    return result, calls(project), None if ld_library_path == "(unset)" else ld_library_path


# Evaluation -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_fork_flake_evaluates_every_shell_on_every_system(flavour, forks):
    assert_evaluated(forks(flavour), FORK_SHELLS)
    check = flake_check(forks(flavour))
    assert check.returncode == 0 and "warning" not in check.stderr, check.stderr


@pytest.mark.parametrize("python_version", QUESTIONS["python_version"]["choices"])
def test_fork_shell_python_follows_the_answer(python_version, forks):
    fork = forks("darwinix", python_version)
    assert_evaluated(fork, FORK_SHELLS)
    for by_name in every_shell(fork, "shell.PYTHON").values():
        assert all(python.endswith(f"-python3-{python_version}/bin/python3") for python in by_name.values())


def test_template_flake_evaluates_on_every_system(template_flake):
    assert_evaluated(template_flake, {"default"})
    check = flake_check(template_flake)
    assert check.returncode == 0 and "warning" not in check.stderr, check.stderr


def test_flakes_follow_the_newest_stable_nixpkgs(forks):
    for flake in (forks("pipulate") / "flake.nix", ROOT / "flake.nix"):
        url = nix("eval", "--impure", "--raw", "--expr", f"(import {flake}).inputs.nixpkgs.url")
        assert url.stdout == NIXPKGS, url.stderr


def test_x86_64_darwin_would_fail_as_nixpkgs_26_11_fails_it(forks, tmp_path):
    fork = copy_of(forks("darwinix"), tmp_path)
    flake = (fork / "flake.nix").read_text()
    (fork / "flake.nix").write_text(flake.replace('"aarch64-darwin" ]', '"aarch64-darwin" "x86_64-darwin" ]', 1))
    check = flake_check(fork)
    assert check.returncode != 0
    assert "Nixpkgs 26.11 has dropped support for x86_64-darwin." in check.stderr


def test_stub_refuses_nix_older_than_2_18_as_nixpkgs_does():
    # The stub's flake evaluated as if by Nix 2.8 (Debian bookworm's): scopedImport replaces its builtins.
    stub = f'scopedImport {{ builtins = builtins // {{ nixVersion = "2.8.0"; }}; }} {STUB}/flake.nix'
    packages = f"(({stub}).outputs {{ self = {{ }}; }}).legacyPackages.x86_64-linux"
    result = nix("eval", "--impure", "--expr", f"{packages}.git")
    assert result.returncode != 0
    assert "requires an implementation of Nix with the following features" in result.stderr
    assert "`builtins.nixVersion` reports at least 2.18" in result.stderr


def test_description_with_nix_syntax_stays_a_plain_string(tmp_path):
    description = 'Say "hi" to ${HOME} \\ and <b>'
    fork = render(tmp_path / "fork", flavour="darwinix", description=description)
    result = nix("eval", "--impure", "--json", "--expr", f"(import {fork}/flake.nix).description")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == description


def test_misspelled_package_in_local_nix_fails_evaluation(forks, tmp_path):
    fork = copy_of(forks("darwinix"), tmp_path)
    (fork / "local.nix").write_text("{ pkgs }: { packages = [ pkgs.pyhton312 ]; }\n")
    result = nix("eval", f"path:{fork}#devShells.x86_64-linux.quiet.drvPath")
    assert result.returncode != 0
    assert "attribute 'pyhton312' missing" in result.stderr


@pytest.mark.parametrize("local_nix, warning", [
    ("{ pkgs }: { packages = [ pkgs.nixfmt-rfc-style ]; }",
     "nixfmt-rfc-style is now the same as pkgs.nixfmt which should be used instead."),
    ('{ pkgs }: { shellHook = "echo ${pkgs.system}"; }',
     "'system' has been renamed to/replaced by 'stdenv.hostPlatform.system'"),
])
def test_deprecated_name_in_local_nix_fails_evaluation(local_nix, warning, forks, tmp_path):
    fork = copy_of(forks("pipulate"), tmp_path)
    (fork / "local.nix").write_text(local_nix + "\n")
    result = nix("eval", f"path:{fork}#devShells.x86_64-linux.quiet.drvPath")
    assert result.returncode != 0
    assert f"evaluation warning: {warning}" in result.stderr


def test_local_nix_adds_packages_to_every_shell(forks, tmp_path):
    fork = copy_of(forks("pipulate"), tmp_path)
    (fork / "local.nix").write_text("{ pkgs }: { packages = [ pkgs.zlib ]; }\n")
    for by_name in every_shell(fork, "map (package: package.name) shell.packages").values():
        for names in by_name.values():
            assert {"zlib", "git", "uv"} <= set(names)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_app_shells_on_linux_bring_chromium_for_the_crawls_javascript(flavour, forks):
    for system, by_name in every_shell(forks(flavour), "map (package: package.name) shell.packages").items():
        for names in by_name.values():
            assert ("chromium" in names) == (flavour != "darwinix" and system.endswith("linux")), (system, names)


# The library path --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host_path", [None, "/host/lib"])
def test_linux_shell_puts_the_wheel_libraries_first(host_path, forks, tmp_path):
    env = {"LD_LIBRARY_PATH": host_path} if host_path else {}
    _, _, ld_library_path = run_hook(forks("darwinix"), "quiet", tmp_path, env=env)
    entries = ld_library_path.split(":")
    assert [Path(entry).name for entry in entries[:2]] == ["lib", "lib"]
    assert entries[0].endswith("-gcc-lib/lib") and entries[1].endswith("-zlib/lib")
    assert entries[2:] == ([host_path] if host_path else [])


@pytest.mark.parametrize("host_path", [None, "/host/lib"])
def test_macos_shell_leaves_ld_library_path_alone(host_path, forks, tmp_path):
    env = {"LD_LIBRARY_PATH": host_path} if host_path else {}
    result, _, ld_library_path = run_hook(forks("darwinix"), "quiet", tmp_path, system="aarch64-darwin", env=env)
    assert result.returncode == 0, result.stderr
    assert ld_library_path == host_path


# What the shells do at start --------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_default_shell_sets_up_then_starts(flavour, forks, tmp_path):
    result, made, _ = run_hook(forks(flavour), "default", tmp_path)
    assert result.returncode == 0, result.stderr
    canary = ["python -c import numpy"] if flavour == "darwinix" else []
    assert made == ["run setup", *canary, "run start"]


def test_dev_shell_sets_up_and_starts_nothing(forks, tmp_path):
    result, made, _ = run_hook(forks("darwinix"), "dev", tmp_path)
    assert result.returncode == 0, result.stderr
    assert made == ["run setup", "python -c import numpy"]


def test_quiet_shell_is_silent_and_runs_nothing(forks, tmp_path, gpu_bin):
    result, made, _ = run_hook(forks("darwinix"), "quiet", tmp_path, path_extra=[gpu_bin])
    assert (result.returncode, result.stdout, result.stderr, made) == (0, "", "", [])


def test_local_nix_shell_hook_runs_before_setup(forks, tmp_path):
    fork = copy_of(forks("pipulate"), tmp_path)
    (fork / "local.nix").write_text('{ pkgs }: { shellHook = "echo local >> calls.log"; }\n')
    result, made, _ = run_hook(fork, "default", tmp_path)
    assert result.returncode == 0, result.stderr
    assert made == ["local", "run setup", "run start"]


def test_shell_started_in_a_subdirectory_uses_the_project(forks, tmp_path):
    (tmp_path / "project" / "notebooks").mkdir(parents=True)
    result, made, _ = run_hook(forks("pipulate"), "default", tmp_path, cwd=tmp_path / "project" / "notebooks")
    assert result.returncode == 0, result.stderr
    assert made == ["run setup", "run start"]


def test_shell_started_outside_the_project_says_so_and_runs_nothing(forks, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Another project's flake.nix on the way up is not this project.
    shutil.copy(forks("darwinix") / "flake.nix", tmp_path / "flake.nix")
    executable(tmp_path / "run", "#!/bin/sh\necho ran >> calls.log\n")
    result, made, _ = run_hook(forks("pipulate"), "default", tmp_path, cwd=elsewhere)
    assert made == [] and not (tmp_path / "calls.log").exists()
    assert f"This shell started in {elsewhere}, outside the project" in result.stderr


def test_numpy_canary_failure_explains_and_stops_the_start(forks, tmp_path):
    result, made, _ = run_hook(forks("darwinix"), "default", tmp_path, numpy_imports=False)
    assert made == ["run setup", "python -c import numpy"]
    assert "ImportError: libstdc++.so.6" in result.stderr
    assert "numpy does not import in .venv" in result.stderr
    assert "rm -rf .venv" in result.stderr and "LD_LIBRARY_PATH=/nix/store/" in result.stderr


@pytest.mark.parametrize("system, env, first_step", [
    ("x86_64-linux", {"WSL_DISTRO_NAME": "Ubuntu"}, "On WSL, first keep the project in the Linux file system"),
    ("aarch64-darwin", {}, "On macOS, first make .venv afresh (rm -rf .venv"),
])
def test_numpy_canary_names_the_first_step_on_wsl_and_macos(system, env, first_step, forks, tmp_path):
    result, _, _ = run_hook(forks("darwinix"), "dev", tmp_path, system=system, numpy_imports=False, env=env)
    assert result.returncode != 0
    assert first_step in result.stderr


# CUDA --------------------------------------------------------------------------------------------------------------

@pytest.fixture
def driver(tmp_path):
    """A host library directory with an NVIDIA driver in it, and other libraries that must stay out of the shell."""
    lib = tmp_path / "usr-lib"
    lib.mkdir()
    for name in ("libcuda.so.550.54", "libnvidia-ml.so.550.54", "libnvidia-ptxjitcompiler.so.550.54",
                 "libstdc++.so.6", "libz.so.1", "libssl.so.3"):
        (lib / name).write_text("")
    for link, target in (("libcuda.so.1", "libcuda.so.550.54"), ("libcuda.so", "libcuda.so.1"),
                         ("libnvidia-ml.so.1", "libnvidia-ml.so.550.54")):
        (lib / link).symlink_to(target)
    return lib


def ldconfig_knowing(gpu_bin: Path, driver: Path) -> None:
    """An ldconfig whose cache has the driver, as on Ubuntu or Fedora once the driver package is installed."""
    executable(gpu_bin / "ldconfig", "#!/bin/sh\ncat <<'EOF'\n3 libs found in cache `/etc/ld.so.cache'\n"
               f"\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1\n"
               f"\tlibcuda.so.1 (libc6,x86-64) => {driver}/libcuda.so.1\n"
               f"\tlibstdc++.so.6 (libc6,x86-64) => {driver}/libstdc++.so.6\nEOF\n")


def assert_only_the_driver_is_exposed(ld_library_path: str, driver: Path) -> None:
    assert str(driver) not in ld_library_path.split(":")
    linked = Path(ld_library_path.split(":")[-1])
    assert sorted(path.name for path in linked.iterdir()) == [
        "libcuda.so", "libcuda.so.1", "libcuda.so.550.54", "libnvidia-ml.so.1", "libnvidia-ml.so.550.54",
        "libnvidia-ptxjitcompiler.so.550.54"]
    assert (linked / "libcuda.so.1").resolve() == (driver / "libcuda.so.550.54")


def test_cuda_driver_in_ldconfigs_cache_is_linked_alone(forks, tmp_path, gpu_bin, driver):
    ldconfig_knowing(gpu_bin, driver)
    result, made, ld_library_path = run_hook(forks("pipulate"), "dev", tmp_path, path_extra=[gpu_bin])
    assert f"NVIDIA GPU found: CUDA wheels use the driver in {driver}." in result.stderr
    assert made == ["run setup"]
    assert_only_the_driver_is_exposed(ld_library_path, driver)
    assert ld_library_path.split(":")[-1].startswith(f"{tmp_path}/.cache/nix-cuda-driver")


def test_cuda_driver_dir_in_local_nix_is_used_first(forks, tmp_path, gpu_bin, driver):
    fork = copy_of(forks("pipulate"), tmp_path)
    (fork / "local.nix").write_text(f"{{ pkgs }}: {{ shellHook = ''export CUDA_DRIVER_DIR={driver}''; }}\n")
    result, _, ld_library_path = run_hook(fork, "dev", tmp_path, path_extra=[gpu_bin])
    assert f"CUDA wheels use the driver in {driver}." in result.stderr
    assert_only_the_driver_is_exposed(ld_library_path, driver)


def test_gpu_without_a_driver_found_says_what_to_set(forks, tmp_path, gpu_bin):
    executable(gpu_bin / "ldconfig", "#!/bin/sh\necho '0 libs found in cache'\n")
    result, made, ld_library_path = run_hook(forks("pipulate"), "dev", tmp_path, path_extra=[gpu_bin])
    assert "NVIDIA GPU found, but no libcuda.so.1" in result.stderr and "CUDA_DRIVER_DIR" in result.stderr
    assert made == ["run setup"] and len(ld_library_path.split(":")) == 2


# A real nix develop -------------------------------------------------------------------------------------------------

# On a chroot store nixpkgs' bash is never where nix develop looks for it, so it says it uses the bash on PATH.
IGNORED_BASH = re.compile(r"^error \(ignored\): .*bashInteractive.*\n", re.MULTILINE)


def develop(*args, cwd, tmp_path, env=FLAKES):
    # nix develop leaves its temporary directories behind (it becomes the shell), so they go in tmp_path.
    (tmp_path / "tmp").mkdir(exist_ok=True)
    result = nix(*args, env=env | {"TMPDIR": str(tmp_path / "tmp")}, cwd=cwd)
    return result, IGNORED_BASH.sub("", result.stderr)


def readme_first_command(fork: Path) -> str:
    start = (fork / "README.md").read_text().split("\n## Start\n", 1)[1]
    return next(line.split("#")[0].strip() for line in start.splitlines() if line.startswith("nix "))


def test_readme_first_command_starts_the_shell_on_a_stock_nix(forks, tmp_path):
    fork = forks("darwinix")
    command = readme_first_command(fork)
    assert command == "nix --extra-experimental-features 'nix-command flakes' develop"
    project = logging_project(fork, tmp_path / "project")
    result, stderr = develop(*shlex.split(command)[1:], "-c", "true", cwd=project, tmp_path=tmp_path, env=STOCK)
    assert result.returncode == 0, stderr
    assert "warning" not in stderr and "error" not in stderr, stderr
    assert calls(project) == ["run setup", "python -c import numpy", "run start"]
    # Without the flag, a stock Nix stops at once: the README's flag is what makes the first command work.
    refused, _ = develop("develop", "-c", "true", cwd=project, tmp_path=tmp_path, env=STOCK)
    assert "experimental Nix feature 'nix-command' is disabled" in refused.stderr


def test_nix_develop_of_the_project_works_from_its_subdirectories_only(forks, tmp_path):
    project = logging_project(forks("pipulate"), tmp_path / "project")
    (project / "notebooks").mkdir()
    result, stderr = develop("develop", f"path:{project}", "-c", "true", cwd=project / "notebooks", tmp_path=tmp_path)
    assert result.returncode == 0, stderr
    assert calls(project) == ["run setup", "run start"]
    (tmp_path / "elsewhere").mkdir()
    result, stderr = develop("develop", f"path:{project}", "-c", "true", cwd=tmp_path / "elsewhere", tmp_path=tmp_path)
    assert result.returncode == 0, stderr
    assert calls(project) == ["run setup", "run start"]  # nothing more
    assert "outside the project" in stderr


# flake.lock, the fork's own pin -------------------------------------------------------------------------------------

def commit_all_but_the_lock(repository: Path) -> Path:
    """The repository as just after its first nix develop: everything committed but the flake.lock it wrote."""
    lock_file = (repository / "flake.lock").read_bytes()
    (repository / "flake.lock").unlink()
    commit_all(repository, "Render")
    (repository / "flake.lock").write_bytes(lock_file)
    return repository


def test_shell_asks_for_an_uncommitted_lock_to_be_committed(forks, tmp_path):
    project = commit_all_but_the_lock(logging_project(forks("darwinix"), tmp_path / "project"))
    result, _, _ = run_hook(forks("darwinix"), "dev", tmp_path)
    assert "flake.lock pins the nixpkgs of this project's shells: commit it" in result.stderr
    commit_all(project, "Pin the Nix inputs")
    result, _, _ = run_hook(forks("darwinix"), "dev", tmp_path)
    assert "flake.lock" not in result.stderr


def test_uncommitted_lock_does_not_block_an_update(forks, tmp_path):
    fork = commit_all_but_the_lock(copy_of(forks("darwinix"), tmp_path))
    # PYTHON=false stops the update at its set-up, right after the clean-tree check this is about.
    result = subprocess.run(["./run", "update"], cwd=fork, env=os.environ | {"PYTHON": "false"},
                            capture_output=True, text=True, timeout=60)
    assert "Refusing to update" not in result.stderr, result.stderr
    assert git(fork, "status", "--porcelain") == ""
    assert git(fork, "show", "--name-only", "--format=", "HEAD").split() == ["flake.lock"]
