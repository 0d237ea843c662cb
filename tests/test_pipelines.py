"""The ready-made pipelines: valid against the GitHub-workflow and Azure-pipelines schemas, and every
`opsgenie-export` command line in them and in the README accepted by the real CLI (parsed, not run).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml
from typer.exceptions import TyperException

from opsgenie_export.cli import app

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "opsgenie-export.yml"
CI_WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
JENKINSFILE = REPO / "Jenkinsfile"
AZURE = REPO / "azure-pipelines.yml"
README = REPO / "README.md"
PIPELINES = (WORKFLOW, JENKINSFILE, AZURE)
DOCUMENTED = "opsgenie-export sync --summary-json opsgenie-export-summary.json"

# `opsgenie-export` (bare or as a path such as .venv/bin/opsgenie-export) followed by a subcommand or an
# option, up to the end of the line or a closing quote; `pip install "opsgenie-export @ git+…"`,
# file names and prose do not match.
COMMAND = re.compile(r"(?:^|(?<=[\s'\"`]))(?:[\w.${}()/-]*/)?opsgenie-export[ \t]+([a-z-][^\n'\"`]*)", re.MULTILINE)


def commands_in(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":  # the README's commands are those in its code blocks
        text = "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL))
    return [shlex.split(match.group(1), comments=True) for match in COMMAND.finditer(text)]


def parse(argv: list[str]) -> Any:
    """Parse argv exactly as `opsgenie-export` would, without running the command (Typer's click)."""
    group = typer.main.get_command(app)
    parent = group.context_class(group, info_name="opsgenie-export", resilient_parsing=False)
    name, *args = argv
    command = group.get_command(parent, name)  # type: ignore[attr-defined]
    assert command is not None, f"no such command: {name}"
    return command.make_context(name, list(args), parent=parent, resilient_parsing=False)


def check_schema(schema: str, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *extra, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def azure_view(path: Path, target: Path) -> Path:
    """The pipeline as Azure reads it: every YAML scalar is a string (the schema spells booleans and
    numbers as string patterns), written as JSON for check-jsonschema."""

    class StringLoader(yaml.SafeLoader):
        yaml_implicit_resolvers: dict[str, Any] = {}

    target.write_text(json.dumps(yaml.load(path.read_text(encoding="utf-8"), Loader=StringLoader)))
    return target


# -- schemas ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", [WORKFLOW, CI_WORKFLOW], ids=lambda p: p.name)
def test_github_workflows_validate(workflow: Path) -> None:
    result = check_schema("vendor.github-workflows", workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_azure_pipeline_validates(tmp_path: Path) -> None:
    # The default regex dialect (regress, unicode mode) rejects escapes in the Azure schema's patterns.
    result = check_schema(
        "vendor.azure-pipelines", azure_view(AZURE, tmp_path / "azure.json"), "--regex-variant", "nonunicode"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_checks_catch_a_broken_pipeline(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "runs_on:"), encoding="utf-8")
    assert check_schema("vendor.github-workflows", broken).returncode == 1
    azure = AZURE.read_text(encoding="utf-8").replace("timeoutInMinutes:", "timeoutMinutes:")
    broken.write_text(azure, encoding="utf-8")
    view = azure_view(broken, tmp_path / "broken.json")
    assert check_schema("vendor.azure-pipelines", view, "--regex-variant", "nonunicode").returncode == 1


# -- command lines ----------------------------------------------------------------------------------


def test_command_extraction_finds_the_commands_and_nothing_else() -> None:
    assert commands_in(README) == [
        ["sync", "--initialize-port-resources", "--summary-json", "summary.json"],
        ["validate", "--mapping", "mapping.yaml", "--blueprints", "blueprints/"],
        ["serve", "--port", "8000"],
        ["sync", "--summary-json", "opsgenie-export-summary.json"],
    ]
    for path in PIPELINES:
        assert len(commands_in(path)) == 1, path
    assert commands_in(CI_WORKFLOW) == []


@pytest.mark.parametrize("path", [*PIPELINES, README], ids=lambda p: p.name)
def test_every_command_line_parses_with_the_real_cli(path: Path) -> None:
    for argv in commands_in(path):
        ctx = parse(argv)
        assert ctx.command.name == argv[0]
        if argv[0] == "sync":
            assert ctx.params["summary_json"] is not None


def test_the_parser_rejects_what_the_cli_rejects() -> None:
    with pytest.raises(TyperException, match="No such option: --summary"):
        parse(["sync", "--summary", "x.json"])
    with pytest.raises(typer.BadParameter):
        parse(["sync", "--workers", "0"])
    assert parse(["sync", "--log-format", "json", "-q", "--no-color"]).params["quiet"] is True


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_each_pipeline_runs_the_documented_command(path: Path) -> None:
    readme = README.read_text(encoding="utf-8")
    assert f"The command they run:\n\n```bash\n{DOCUMENTED}\n```" in readme
    assert commands_in(path) == [shlex.split(DOCUMENTED)[1:]]


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_each_pipeline_keeps_the_summary_it_writes(path: Path) -> None:
    summary = shlex.split(DOCUMENTED)[-1]
    text = path.read_text(encoding="utf-8")
    keep = {
        WORKFLOW: f"path: {summary}",
        JENKINSFILE: f"archiveArtifacts artifacts: '{summary}'",
        AZURE: f"PathtoPublish: {summary}",
    }[path]
    assert keep in text


def test_scheduled_workflow_shape() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "cron" in triggers["schedule"][0] and "workflow_dispatch" in triggers
    job = workflow["jobs"]["sync"]
    assert job["timeout-minutes"] > 0
    sync_step = next(step for step in job["steps"] if DOCUMENTED in step.get("run", ""))
    assert set(sync_step["env"]) >= {"OPSGENIE_API_TOKEN", "PORT_CLIENT_ID", "PORT_CLIENT_SECRET"}
    matrix = yaml.safe_load(CI_WORKFLOW.read_text(encoding="utf-8"))["jobs"]["test"]["strategy"]["matrix"]
    assert matrix["python-version"] == ["3.11", "3.12", "3.13"]
