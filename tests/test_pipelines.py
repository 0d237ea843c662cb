"""The ready-made pipelines: valid against the GitHub-workflow, Azure-pipelines and GitLab-CI schemas,
every `opsgenie-export` command line in them and in the README accepted by the real CLI (parsed, not
run), each installing one pinned version and publishing the summary and the JUnit report.
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
RELEASE_WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
JENKINSFILE = REPO / "Jenkinsfile"
AZURE = REPO / "azure-pipelines.yml"
GITLAB = REPO / ".gitlab-ci.yml"
README = REPO / "README.md"
PIPELINES = (JENKINSFILE, AZURE, GITLAB)  # the GitHub workflow runs the action (tests/test_action.py)
SUMMARY, JUNIT = "opsgenie-export-summary.json", "opsgenie-export-junit.xml"
DOCUMENTED = f"opsgenie-export sync --summary-json {SUMMARY} --junit-xml {JUNIT}"
PACKAGE_VARIABLE = "OPSGENIE_EXPORT_PACKAGE"

# `opsgenie-export` (bare or as a path such as .venv/bin/opsgenie-export) followed by a subcommand or an
# option, up to the end of the line or a closing quote; `pip install "opsgenie-export @ git+…"`,
# file names and prose do not match.
COMMAND = re.compile(r"(?:^|(?<=[\s'\"`]))(?:[\w.${}()/-]*/)?opsgenie-export[ \t]+([a-z-][^\n'\"`]*)", re.MULTILINE)


def commands_in(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":  # the README's commands are those in its code blocks
        text = "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL))
    return [shlex.split(match.group(1), comments=True) for match in COMMAND.finditer(text)]


def sync_commands_in(path: Path) -> list[list[str]]:
    """The command lines, less the `opsgenie-export --version` checks after an install."""
    return [argv for argv in commands_in(path) if argv != ["--version"]]


def parse(argv: list[str]) -> Any:
    """Parse argv exactly as `opsgenie-export` would, without running the command (Typer's click)."""
    if argv == ["--version"]:
        assert any(param.name == "version" for param in typer.main.get_command(app).params)
        return None
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


@pytest.mark.parametrize("workflow", [WORKFLOW, CI_WORKFLOW, RELEASE_WORKFLOW], ids=lambda p: p.name)
def test_github_workflows_validate(workflow: Path) -> None:
    result = check_schema("vendor.github-workflows", workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_pipeline_validates() -> None:
    result = check_schema("vendor.gitlab-ci", GITLAB)
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
    broken.write_text(GITLAB.read_text(encoding="utf-8").replace("when: always", "when: sometimes"))
    assert check_schema("vendor.gitlab-ci", broken).returncode == 1


# -- command lines ----------------------------------------------------------------------------------


def test_command_extraction_finds_the_commands_and_nothing_else() -> None:
    assert commands_in(README) == [
        ["sandbox"],
        ["sync", "--env-file", "sandbox.env", "--initialize-port-resources"],
        ["sync", "--env-file", "sandbox.env", "--dry-run"],
        ["validate", "--from-port", "--env-file", "sandbox.env"],
        ["serve", "--env-file", "sandbox.env", "--port", "8000"],
        ["sync", "--initialize-port-resources", "--summary-json", "summary.json"],
        ["validate", "--mapping", "mapping.yaml", "--blueprints", "blueprints/"],
        ["serve", "--port", "8000"],
        ["sync", "--summary-json", SUMMARY, "--junit-xml", JUNIT],
    ]
    for path in PIPELINES:
        assert len(sync_commands_in(path)) == 1, path
        assert ["--version"] in commands_in(path), path
    assert commands_in(CI_WORKFLOW) == [] and commands_in(WORKFLOW) == []


@pytest.mark.parametrize("path", [*PIPELINES, README], ids=lambda p: p.name)
def test_every_command_line_parses_with_the_real_cli(path: Path) -> None:
    for argv in commands_in(path):
        ctx = parse(argv)
        if ctx is None:  # --version
            continue
        assert ctx.command.name == argv[0]
        if argv[0] == "sync" and path in PIPELINES:  # a pipeline keeps the summary as an artifact
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
    assert sync_commands_in(path) == [shlex.split(DOCUMENTED)[1:]]


def test_jenkins_keeps_the_summary_and_publishes_the_junit_report() -> None:
    text = JENKINSFILE.read_text(encoding="utf-8")
    assert f"junit testResults: '{JUNIT}'" in text
    assert f"archiveArtifacts artifacts: '{SUMMARY}, {JUNIT}'" in text
    assert "unstable(" in text and "returnStatus: true" in text  # exit 1 → UNSTABLE, others fail


def test_azure_keeps_the_summary_and_publishes_the_junit_report() -> None:
    steps = yaml.safe_load(AZURE.read_text(encoding="utf-8"))["jobs"][0]["steps"]
    tasks = {step.get("task"): step for step in steps if "task" in step}
    published = tasks["PublishTestResults@2"]
    assert published["condition"] == "always()"
    assert published["inputs"]["testResultsFormat"] == "JUnit" and published["inputs"]["testResultsFiles"] == JUNIT
    assert tasks["PublishBuildArtifacts@1"]["inputs"]["PathtoPublish"] == SUMMARY


@pytest.mark.parametrize(("code", "step_exit"), [(0, 0), (1, 0), (2, 2), (3, 3), (143, 143)])
def test_azure_partial_result_is_left_to_the_tools_succeeded_with_issues(
    tmp_path: Path, code: int, step_exit: int
) -> None:
    steps = yaml.safe_load(AZURE.read_text(encoding="utf-8"))["jobs"][0]["steps"]
    [script] = [step["script"] for step in steps if "sync" in step.get("script", "")]
    fake = tmp_path / "opsgenie-export"  # stands in for the tool: exits with the code under test
    fake.write_text(f"#!/bin/sh\nexit {code}\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    result = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], env=env, check=False, timeout=60)
    assert result.returncode == step_exit


def test_gitlab_is_scheduled_caches_links_and_publishes_the_junit_report() -> None:
    job = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))["opsgenie-export"]
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in job["rules"]
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"] == {"junit": JUNIT}
    assert set(job["artifacts"]["paths"]) == {SUMMARY, JUNIT}
    [links] = [cache for cache in job["cache"] if cache["key"] == "opsgenie-export-links"]
    assert links["paths"] == [".opsgenie-export-cache/"] and links["when"] == "always"
    assert job["variables"]["OPSGENIE_EXPORT_CACHE_DIR"] == "$CI_PROJECT_DIR/.opsgenie-export-cache"
    assert job["allow_failure"] == {"exit_codes": 1}  # partial passes with a warning, the rest fails


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_each_pipeline_installs_one_pinned_version_through_one_variable(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.lstrip().startswith(("#", "//"))]
    installs = [line for line in text.splitlines() if "pip install" in line and line not in comments]
    assert len(installs) == 1 and PACKAGE_VARIABLE in installs[0], installs
    assert re.search(rf"{PACKAGE_VARIABLE}\W+(?:value:\s*)?opsgenie-export==\d+\.\d+\.\d+\b", text)  # pinned by default
    assert any("git+https://github.com/<owner>/opsgenie-export@v" in line for line in comments)  # documented
    assert "your-org" not in text
    assert PACKAGE_VARIABLE in README.read_text(encoding="utf-8")


def test_scheduled_workflow_uses_the_action_and_works_when_copied() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "cron" in triggers["schedule"][0] and "workflow_dispatch" in triggers
    job = workflow["jobs"]["sync"]
    assert job["timeout-minutes"] > 0
    # Installs nothing itself, and nothing from the repository it is copied into.
    assert "github.repository" not in text and "pip install" not in text
    assert not any("run" in step for step in job["steps"])
    [action_step] = [step for step in job["steps"] if "/opsgenie-export@" in step.get("uses", "")]
    assert action_step["uses"] == "your-org/opsgenie-export@v0.1.0"  # owner and ref: the only blanks
    assert "`uses: your-org/opsgenie-export@v0.1.0`" in text.split("\nname:")[0]  # explained at the top
    assert set(action_step["env"]) >= {"OPSGENIE_API_TOKEN", "PORT_CLIENT_ID", "PORT_CLIENT_SECRET"}
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    assert set(action_step["with"]) <= set(action["inputs"])
    matrix = yaml.safe_load(CI_WORKFLOW.read_text(encoding="utf-8"))["jobs"]["test"]["strategy"]["matrix"]
    assert matrix["python-version"] == ["3.11", "3.12", "3.13"]
