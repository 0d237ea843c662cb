"""The GitHub Action (action.yml): valid against the Action schema, and its own shell steps, taken from
the file, run as the runner runs them (`bash --noprofile --norc -eo pipefail`) in a temporary
workspace against the emulators, with GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_ACTION_PATH and
RUNNER_TEMP set. The `uses:` steps (setup-python, cache, upload-artifact) are GitHub's own actions
and are not run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CREDENTIAL_PREFIXES, OPSGENIE_KEY, PORT_SECRET, REPO, Sandbox, default_mapping_with, repo_checkout

ACTION = REPO / "action.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def check_schema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def step(step_id: str) -> dict[str, Any]:
    [found] = [s for s in action()["runs"]["steps"] if s.get("id") == step_id]
    return found


def read_outputs(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT file as the runner reads it: `name=value` lines and `name<<DELIMITER` blocks;
    a name written twice keeps its last value."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines() if path.exists() else [])
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for value_line in lines:
                if value_line == delimiter:
                    break
                block.append(value_line)
            outputs[name] = "\n".join(block)
        else:
            name, _, value = line.partition("=")
            outputs[name] = value
    return outputs


@dataclass
class Runner:
    """Just enough of a GitHub runner to run a composite action's bash steps."""

    root: Path
    action_path: Path
    inputs: dict[str, str]
    environ: dict[str, str] = field(default_factory=dict)
    step_outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.temp = self.root / "runner-temp"
        self.workspace = self.root / "workspace"
        self.summary = self.root / "step-summary.md"
        for folder in (self.temp, self.workspace):
            folder.mkdir(parents=True, exist_ok=True)
        defaults = {name: spec.get("default", "") for name, spec in action()["inputs"].items()}
        self.inputs = defaults | self.inputs

    def evaluate(self, text: str) -> str:
        """`${{ }}` expressions as the runner would expand them — only the few this action uses;
        anything else fails the test, so the shell steps stay runnable outside GitHub."""

        def value(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression == "runner.temp":
                return str(self.temp)
            if expression == "github.action_path":
                return str(self.action_path)
            if m := re.fullmatch(r"inputs\.([\w-]+)", expression):
                return self.inputs[m.group(1)]
            if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression):
                return self.step_outputs.get(m.group(1), {}).get(m.group(2), "")
            raise AssertionError(f"expression the test runner does not know: {expression}")

        return EXPRESSION.sub(value, text)

    def run(self, step_id: str) -> subprocess.CompletedProcess[str]:
        spec = step(step_id)
        assert spec["shell"] == "bash" and "${{" not in spec["run"], "a shell step reads inputs only via env"
        script = self.temp / f"{step_id}.sh"
        script.write_text(spec["run"], encoding="utf-8")
        output = self.temp / f"output-{step_id}"
        output.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_PREFIXES)}
        env |= {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",  # setup-python's python
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(self.action_path),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "RUNNER_TEMP": str(self.temp),
            "XDG_CACHE_HOME": str(self.root / "xdg-cache"),
            **self.environ,
            **{name: self.evaluate(str(value)) for name, value in spec.get("env", {}).items()},
        }
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        result = subprocess.run(argv, cwd=self.workspace, env=env, capture_output=True, text=True, timeout=600)
        self.step_outputs[step_id] = read_outputs(output)
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """The action's install step, run once: a fresh virtualenv holding the tool built from the checkout."""
    root = tmp_path_factory.mktemp("action-install")
    runner = Runner(root, repo_checkout(root / "action"), {})
    result = runner.run("install")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^opsgenie-export \d+\.\d+\.\d+", result.stdout, re.MULTILINE), result.stdout
    outputs = runner.step_outputs["install"]
    assert Path(outputs["executable"]).is_file() and Path(outputs["python"]).is_file()
    assert not Path(outputs["executable"]).is_relative_to(REPO)
    yield runner


def sync_runner(installed: Runner, tmp_path: Path, sandbox: Sandbox, **inputs: str) -> Runner:
    runner = Runner(tmp_path, installed.action_path, inputs, dict(sandbox.env))
    runner.step_outputs["install"] = installed.step_outputs["install"]
    return runner


REPO_FILES = {"mapping": str(REPO / "mapping.yaml"), "blueprints": str(REPO / "blueprints")}


# -- the schema -------------------------------------------------------------------------------------


def test_action_validates_against_the_github_action_schema(tmp_path: Path) -> None:
    result = check_schema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "action.yml"
    broken.write_text(ACTION.read_text(encoding="utf-8").replace("using: composite", "using: compose"))
    assert check_schema("vendor.github-actions", broken).returncode == 1


def test_action_shape() -> None:
    spec = action()
    assert set(spec["inputs"]) >= {"mapping", "blueprints", "args", "python-version", "cache", "summary-path"}
    assert spec["inputs"]["cache"]["default"] == "true"
    assert set(spec["outputs"]) >= {"exit-code", "result", "upserted", "deleted", "failed", "warnings"}
    for name, output in spec["outputs"].items():
        assert output["value"] == f"${{{{ steps.sync.outputs.{name} }}}}"
    uses = [s["uses"] for s in spec["runs"]["steps"] if "uses" in s]
    assert uses == [
        "actions/setup-python@v5",
        "actions/cache/restore@v4",
        "actions/cache/save@v4",
        "actions/upload-artifact@v4",
    ]
    assert "GITHUB_ACTION_PATH" in step("install")["run"]


# -- the shell steps --------------------------------------------------------------------------------


def test_successful_run(installed: Runner, seed_sandbox: Sandbox, tmp_path: Path) -> None:
    runner = sync_runner(installed, tmp_path, seed_sandbox, **REPO_FILES, args="--initialize-port-resources")
    result = runner.run("sync")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((runner.workspace / "opsgenie-export-summary.json").read_text())
    outputs = runner.step_outputs["sync"]
    assert outputs["exit-code"] == "0" and outputs["result"] == "success"
    assert outputs["upserted"] == str(sum(r["upserted"] for r in summary["resources"])) != "0"
    assert outputs["failed"] == "0" and outputs["deleted"] == "0" and outputs["warnings"] == "0"
    assert outputs["summary-path"] == "opsgenie-export-summary.json"
    step_summary = runner.summary.read_text(encoding="utf-8")
    assert step_summary.startswith("### Opsgenie → Port: success (exit 0")
    assert "::error" not in result.stdout
    assert (runner.temp / "opsgenie-export-cache").is_dir()  # where the cache steps save and restore
    assert seed_sandbox.port.entities["opsGenieService"]
    for text in (result.stdout, result.stderr, step_summary, json.dumps(outputs)):
        assert OPSGENIE_KEY not in text and PORT_SECRET not in text


def test_partial_run_fails_the_step_with_exit_1(installed: Runner, seed_sandbox: Sandbox, tmp_path: Path) -> None:
    # A string plus an array is a JQ runtime error: both services fail on their title.
    mapping = default_mapping_with(tmp_path / "broken.yaml", ("title: .name\n", "title: .name + .tags\n"))
    inputs = {**REPO_FILES, "mapping": str(mapping), "args": "--initialize-port-resources  '--workers' 2"}
    runner = sync_runner(installed, tmp_path, seed_sandbox, **inputs)
    result = runner.run("sync")
    assert result.returncode == 1, result.stdout + result.stderr
    outputs = runner.step_outputs["sync"]
    assert outputs["exit-code"] == "1" and outputs["result"] == "partial"
    assert outputs["failed"] == "2" and int(outputs["upserted"]) > 0
    assert runner.summary.read_text(encoding="utf-8").startswith("### Opsgenie → Port: partial (exit 1")
    assert re.search(r"^::error title=resources\[\d\] service", result.stdout, re.MULTILINE), result.stdout


def test_configuration_error_fails_the_step_with_exit_2(
    installed: Runner, seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    runner = sync_runner(installed, tmp_path, seed_sandbox, **REPO_FILES, args="--region mars")
    result = runner.run("sync")
    assert result.returncode == 2, result.stdout + result.stderr
    outputs = runner.step_outputs["sync"]
    assert outputs["exit-code"] == "2" and outputs["result"] == "failed"
    if not (runner.workspace / "opsgenie-export-summary.json").exists():
        assert outputs["upserted"] == outputs["deleted"] == outputs["failed"] == outputs["warnings"] == ""
        assert "stopped before it wrote a summary" in runner.summary.read_text(encoding="utf-8")
    assert seed_sandbox.port.count() == 0


def test_args_are_split_never_evaluated(installed: Runner, seed_sandbox: Sandbox, tmp_path: Path) -> None:
    runner = sync_runner(installed, tmp_path, seed_sandbox, **REPO_FILES, args="--no-delete $(touch pwned) `touch x`")
    result = runner.run("sync")
    assert result.returncode == 2 and "unexpected extra argument" in result.stderr, result.stderr
    assert not (runner.workspace / "pwned").exists() and not (runner.workspace / "x").exists()
    unbalanced = sync_runner(installed, tmp_path / "2", seed_sandbox, **REPO_FILES, args="--region 'eu")
    result = unbalanced.run("sync")
    assert result.returncode == 2
    assert "::error title=opsgenie-export::input args: No closing quotation" in result.stderr
    assert unbalanced.step_outputs["sync"]["exit-code"] == "2"
