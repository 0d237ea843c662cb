"""Packaging: one version, an SPDX license, and the release workflow's own build and smoke-test steps
(taken from .github/workflows/release.yml) run here: `python -m build`, `twine check`, the wheel
installed into a fresh virtualenv without a warning, `opsgenie-export --version` and `demo` from it.

The wheel test is marked `wheel` (deselect with `-m "not wheel"` while iterating); `make test` runs
it. It needs PyPI, or a pip cache that already holds setuptools and the runtime dependencies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsgenie_export import __version__

from conftest import CREDENTIAL_PREFIXES, REPO, repo_checkout, run_cli

RELEASE = REPO / ".github" / "workflows" / "release.yml"
PACKAGED = (
    "opsgenie_export/defaults/mapping.yaml",
    "opsgenie_export/defaults/blueprints/opsGenieAlert.json",
    "opsgenie_export/defaults/blueprints/opsGenieIncident.json",
    "opsgenie_export/defaults/blueprints/opsGenieService.json",
    "opsgenie_export/examples/ocean/mapping.yaml",
    "opsgenie_export/examples/ocean/blueprints/opsGenieTeam.json",
    "opsgenie_export/examples/webhook/mapping.yaml",
    "opsgenie_export/sandbox/demo.py",
    "opsgenie_export/sandbox/opsgenie_emulator.py",
    "opsgenie_export/sandbox/port_emulator.py",
)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_is_defined_once() -> None:
    project = pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "opsgenie_export.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    result = run_cli(["--version"])
    assert result.exit_code == 0 and result.stdout == f"opsgenie-export {__version__}\n"
    for pipeline in ("Jenkinsfile", "azure-pipelines.yml", ".gitlab-ci.yml"):  # pinned to this version
        assert f"opsgenie-export=={__version__}" in (REPO / pipeline).read_text(encoding="utf-8"), pipeline


def test_the_license_is_an_spdx_expression_with_its_file() -> None:
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639 forbids both
    [requirement] = pyproject()["build-system"]["requires"]
    assert requirement == "setuptools>=77"  # the first setuptools that reads license expressions


def test_examples_are_packaged_from_the_one_copy() -> None:
    link = REPO / "src" / "opsgenie_export" / "examples"
    assert link.is_symlink() and link.resolve() == (REPO / "examples").resolve()


def release_step(name: str) -> str:
    jobs = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))["jobs"]
    [step] = [s for s in jobs["build"]["steps"] if s.get("name") == name]
    assert "${{" not in step["run"]
    return step["run"]


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.wheel
def test_release_builds_checks_installs_and_runs_the_wheel(tmp_path: Path) -> None:
    pytest.importorskip("build")  # a test extra: `make test` always has it
    checkout = repo_checkout(tmp_path / "checkout")
    if sys.prefix == sys.base_prefix:
        pytest.skip("run from the project's virtualenv (make test): the build step pip-installs into `python`")
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_PREFIXES)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a runner; setuptools warns when it cannot byte-compile
    env |= {
        # setup-python's `python`: here the virtualenv's, which already holds build and twine
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_REF_NAME": f"v{__version__}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",  # as the release job sets it
        "PIP_CONFIG_FILE": os.devnull,  # a clean pip, as on a runner (this machine's config adds warnings)
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
    }

    tag = run_step(release_step("The tag names the package's version"), checkout, env)
    assert tag.returncode == 0, tag.stdout + tag.stderr
    wrong_tag = run_step(release_step("The tag names the package's version"), checkout, env | {"GITHUB_REF_NAME": "v0"})
    assert wrong_tag.returncode == 1 and "does not match the package version" in wrong_tag.stdout

    build = run_step(release_step("Build the sdist and the wheel"), checkout, env)
    assert build.returncode == 0, build.stdout + build.stderr
    assert not re.search(r"warn|deprecat", build.stderr, re.IGNORECASE), build.stderr
    assert "PASSED" in build.stdout and "WARNING" not in build.stdout  # twine check --strict
    [wheel] = (checkout / "dist").glob("*.whl")
    [sdist] = (checkout / "dist").glob("*.tar.gz")
    assert wheel.name == f"opsgenie_export-{__version__}-py3-none-any.whl"

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"opsgenie_export-{__version__}.dist-info/METADATA").decode()
    assert set(PACKAGED) <= names, set(PACKAGED) - names
    package = checkout / "src"
    modules = {str(path.relative_to(package)) for path in package.rglob("*.py") if "egg-info" not in str(path)}
    assert modules <= names, modules - names  # every module, also of a subpackage added later
    assert f"opsgenie_export-{__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata
    assert f"\nVersion: {__version__}\n" in metadata
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
    assert members["LICENSE"].isfile()
    assert members["src/opsgenie_export/examples/ocean/mapping.yaml"].isfile()  # a file, not a link

    smoke_step = release_step("Install the wheel into a fresh virtualenv, run --version and the demo")
    smoke = run_step(smoke_step, checkout, env)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert (runner_temp / "pip-stderr.txt").read_text() == ""  # installing printed no warning at all
    assert f"opsgenie-export {__version__}\n" in smoke.stdout
    assert re.search(r"^success: exit 0", smoke.stderr, re.MULTILINE), smoke.stderr
    venv_python = runner_temp / "smoke" / "bin" / "python"
    where = subprocess.run(
        [str(venv_python), "-c", "import opsgenie_export; print(opsgenie_export.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(runner_temp / "smoke")  # the wheel's copy, not the source


def test_release_workflow_shape() -> None:
    workflow = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    assert workflow[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as a boolean
    jobs = workflow["jobs"]
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}  # trusted publishing
    assert [s.get("uses") for s in jobs["pypi"]["steps"]][-1] == "pypa/gh-action-pypi-publish@release/v1"
    assert "password" not in str(jobs["pypi"]) and "secrets." not in RELEASE.read_text(encoding="utf-8")
    assert jobs["github-release"]["permissions"] == {"contents": "write"}
    assert "gh release upload" in str(jobs["github-release"]["steps"])
    assert jobs["pypi"]["needs"] == jobs["github-release"]["needs"] == "build"
