"""CI output: GitHub step summary and workflow commands, Azure logging commands, escaping, caps, and
stderr logs (text, Rich, JSON) that no runner can take for a command.

The parsers below follow the runners' own rules: GitHub's runner takes `::command props::message`
at the start of a line (after whitespace) and legacy `##[command]` anywhere in a line; Azure's agent
takes `##vso[` anywhere in a line. Both read stdout and stderr, one line at a time (CR or LF ends one).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from opsgenie_export import ci
from opsgenie_export.errors import AuthError
from opsgenie_export.outcome import BlueprintStats, ResourceStats, RunOutcome
from opsgenie_export.report import (
    CommandSafeStream,
    JsonEvents,
    RichEvents,
    TextEvents,
    defuse_commands,
    make_console,
    one_line,
    render_end,
    render_summary,
)
from opsgenie_export.sandbox.server import FaultRule

from conftest import OPSGENIE_KEY, Sandbox, assert_no_secret_leak, run_cli, sync_args

PWNED = "::error::pwned"
VSO = "x\n##vso[task.complete result=Succeeded]"
PERCENT = "100%"
PIPE = "a|b"
HOSTILE = (PWNED, VSO, PERCENT, PIPE)
GITHUB = {"GITHUB_ACTIONS": "true"}
AZURE = {"TF_BUILD": "True"}


# -- outcomes ---------------------------------------------------------------------------------------


def resource(index: int, kind: str, **counts: int) -> ResourceStats:
    stats = ResourceStats(index, kind, [f"opsgenie{kind.title()}"], status="ok")
    for bucket, count in counts.items():
        stats.add(bucket, count)
    return stats


def success() -> RunOutcome:
    alerts = resource(0, "alert", fetched=5, upserted=4, unchanged=1)
    blueprint = BlueprintStats("opsgenieAlert", upserted=4, unchanged=1, entities=5, deletion="done")
    return RunOutcome(resources=[alerts], blueprints={"opsgenieAlert": blueprint}, seconds=1.5)


def with_warnings(*, strict: bool = False) -> RunOutcome:
    """Only warnings: one item skipped by the mapping, two merged into one entity (one hostile id)."""
    teams = resource(
        0, "schedule-oncall", fetched=4, upserted=2, skipped=1, merged=1, merged_items=2, merged_entities=1
    )
    teams.sample("skipped", "sched-9 (identifier null)")
    teams.sample("merged", f"team-1{PWNED}")
    blueprint = BlueprintStats("opsgenieTeam", upserted=2, entities=2, deletion="done")
    return RunOutcome(resources=[teams], blueprints={"opsgenieTeam": blueprint}, seconds=1.0, strict=strict)


def partial() -> RunOutcome:
    """One failed kind, failed items with hostile messages, a skipped deletion."""
    alerts = resource(0, "alert", fetched=6, upserted=2)
    for text in HOSTILE:
        alerts.add("failed", error=f"alert {text}: mapping failed")
    incidents = ResourceStats(1, "incident", ["opsgenieIncident"], status="failed", reason=f"fetch failed: {VSO}")
    alert_bp = BlueprintStats("opsgenieAlert", upserted=2, failed=4, entities=6, deletion="done")
    skipped = f"skipped: {PERCENT} of {PIPE} stale"
    service_bp = BlueprintStats("opsgenieService", upserted=3, entities=3, deletion=skipped)
    blueprints = {"opsgenieAlert": alert_bp, "opsgenieService": service_bp}
    return RunOutcome(resources=[alerts, incidents], blueprints=blueprints, seconds=2.0)


def failure() -> RunOutcome:
    alerts = resource(0, "alert")  # stopped before its first page
    alerts.status, alerts.reason = "failed", "run stopped"
    return RunOutcome(resources=[alerts], fatal=AuthError(f"Port refused the credentials {PWNED}"))


def many_failures() -> RunOutcome:
    resources = []
    for index in range(3):
        stats = resource(index, "alert", fetched=30)
        for item in range(30):
            stats.add("failed", error=f"alert {index}-{item}: {VSO}")
        resources.append(stats)
    blueprints = {f"bp{n}": BlueprintStats(f"bp{n}", deletion="skipped: threshold") for n in range(15)}
    return RunOutcome(resources=resources, blueprints=blueprints)


def publish(outcome: RunOutcome, environ: dict[str, str], **kwargs: object) -> str:
    stdout = io.StringIO()
    ci.publish(outcome, environ, stdout, **kwargs)  # type: ignore[arg-type]
    return stdout.getvalue()


def github_env(tmp_path: Path) -> dict[str, str]:
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    return GITHUB | {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)}


# -- the runners' parsers ---------------------------------------------------------------------------


def runner_lines(text: str) -> list[str]:
    """Lines as the runners read them: CR, LF and CRLF all end a line."""
    return [line for line in re.split(r"\r\n|\r|\n", text) if line]


def github_parse(line: str) -> tuple[str, dict[str, str], str]:
    """GitHub's `::command k=v,k=v::message`, unescaped as the runner unescapes it."""
    assert line.startswith("::"), line
    end = line.index("::", 2)
    command, _, props = line[2:end].partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        name, _, value = pair.partition("=")
        properties[name] = _unescape(value, {"%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ",", "%25": "%"})
    return command, properties, _unescape(line[end + 2 :], {"%0D": "\r", "%0A": "\n", "%25": "%"})


def azure_parse(line: str) -> tuple[str, dict[str, str], str]:
    """Azure's `##vso[area.action k=v;k=v]data`: the first `##vso[` anywhere in the line, the first `]`."""
    start = line.index("##vso[")
    assert start == 0, line
    end = line.index("]", start)
    command, _, props = line[start + 6 : end].partition(" ")
    properties = {}
    for pair in filter(None, props.split(";")):
        name, _, value = pair.partition("=")
        properties[name] = _unescape(value, {"%0D": "\r", "%0A": "\n", "%5D": "]", "%3B": ";", "%AZP25": "%"})
    return command, properties, _unescape(line[end + 1 :], {"%0D": "\r", "%0A": "\n", "%AZP25": "%"})


def _unescape(text: str, table: dict[str, str]) -> str:
    return re.sub("|".join(map(re.escape, table)), lambda m: table[m.group()], text)


def assert_no_command(text: str) -> None:
    """Log text (stderr) that neither runner would act on."""
    for line in runner_lines(text):
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line and "##vso[" not in line, line


# -- escaping ---------------------------------------------------------------------------------------


def test_github_escaping_follows_the_runner_rules() -> None:
    assert ci.github_message("100%\r\nnext :: a,b") == "100%25%0D%0Anext :: a,b"
    assert ci.github_property("a: b, 100%\n") == "a%3A b%2C 100%25%0A"
    assert ci.github_command("error", "x\n::warning::y", title="t:1,2") == "::error title=t%3A1%2C2::x%0A::warning::y"


def test_azure_escaping_follows_the_agent_rules() -> None:
    assert ci.azure_data("100%\r\n]x;") == "100%AZP25%0D%0A]x;"
    assert ci.azure_property("a];b%\n") == "a%5D%3Bb%AZP25%0A"
    assert ci.azure_command("task.logissue", VSO, type="error") == (
        "##vso[task.logissue type=error;]x%0A##vso[task.complete result=Succeeded]"
    )


def test_other_control_characters_become_visible_text() -> None:
    assert "\x1b" not in ci.github_message("\x1b[31mred\x07")
    assert ci.azure_data("\x1b[2J") == "\\x1b[2J"


@pytest.mark.parametrize("environ", [{}, {"JENKINS_URL": "http://j", "BUILD_ID": "7"}, {"CI": "true"}])
def test_other_runners_get_nothing_extra(environ: dict[str, str]) -> None:
    assert publish(partial(), environ) == ""


@pytest.mark.parametrize("value", ["True", "true", "TRUE"])
def test_azure_is_detected_case_insensitively(value: str) -> None:
    assert ci.detect({"TF_BUILD": value}) == "azure"
    assert ci.detect({"GITHUB_ACTIONS": "true"}) == "github"
    assert ci.detect({"TF_BUILD": "False"}) == ""


# -- GitHub Actions ---------------------------------------------------------------------------------


def test_github_clean_run_writes_the_summary_and_no_annotation(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    assert publish(success(), env) == ""
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert "success (exit 0" in summary
    assert "| 0 | alert | opsgenieAlert | 5 | 0 | 4 | 1 | 0 | 0 | 0 | ok |" in summary
    assert "| opsgenieAlert | 4 | 1 | 0 | 0 | 0 | done |" in summary
    assert "Failures" not in summary
    assert Path(env["GITHUB_OUTPUT"]).read_text() == "exit-code=0\nsummary-result=success\nwarnings=0\n"


def test_github_partial_run_annotates_failed_kinds_items_and_skipped_deletions(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    outcome = partial()
    lines = runner_lines(publish(outcome, env))
    parsed = [github_parse(line) for line in lines]
    errors = [(props["title"], message) for command, props, message in parsed if command == "error"]
    warnings = [(props["title"], message) for command, props, message in parsed if command == "warning"]
    assert len(lines) == len(errors) + len(warnings) == 6
    assert errors[0] == ("resources[1] incident failed", f"fetch failed: {VSO}")
    assert [message for _, message in errors[1:]] == [f"alert {text}: mapping failed" for text in HOSTILE]
    assert warnings == [
        (
            "opsgenieService: deletion skipped",
            f"stale entities of opsgenieService were not deleted: skipped: {PERCENT} of {PIPE} stale",
        )
    ]
    assert "::error title=resources[0] alert%3A failed item::alert ::error::pwned: mapping failed" in lines
    assert "::error title=resources[0] alert%3A failed item::alert 100%25: mapping failed" in lines
    assert Path(env["GITHUB_OUTPUT"]).read_text() == "exit-code=1\nsummary-result=partial\nwarnings=0\n"


def test_github_step_summary_tables_hold_hostile_text_in_their_cells(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    publish(partial(), env)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert summary.startswith("### Opsgenie → Port: partial (exit 1, 2.0s)")
    assert "| 1 | incident | opsgenieIncident | 0 | 0 | 0 | 0 | 0 | 0 | 0 | failed |" in summary
    assert "| opsgenieService | 3 | 0 | 0 | 0 | 0 | skipped: 100% of a\\|b stale |" in summary
    assert "- resources[1] incident: failed: fetch failed: x\\\\n##vso[task.complete result=Succeeded]" in summary
    assert "- resources[0] alert: alert a\\|b: mapping failed" in summary
    assert "**Result: partial**, exit code 1." in summary
    for line in summary.splitlines():
        if line.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", line)) in (12, 8), line  # resource or blueprint columns + 1


def test_github_summary_is_appended_not_replaced(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    Path(env["GITHUB_STEP_SUMMARY"]).write_text("earlier step\n", encoding="utf-8")
    publish(success(), env)
    publish(success(), env)
    text = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert text.startswith("earlier step\n") and text.count("### Opsgenie → Port") == 2


def test_github_failure_annotates_the_fatal_error(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    lines = runner_lines(publish(failure(), env))
    first = github_parse(lines[0])
    assert first == ("error", {"title": "opsgenie-export stopped"}, f"Port refused the credentials {PWNED}")
    assert github_parse(lines[1])[1] == {"title": "resources[0] alert failed"}
    assert Path(env["GITHUB_OUTPUT"]).read_text() == "exit-code=3\nsummary-result=failed\nwarnings=0\n"
    assert "failed (exit 3" in Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")


def test_github_annotations_are_capped_and_summarised(tmp_path: Path) -> None:
    parsed = [github_parse(line) for line in runner_lines(publish(many_failures(), github_env(tmp_path)))]
    errors = [p for p in parsed if p[0] == "error"]
    warnings = [p for p in parsed if p[0] == "warning"]
    assert len(errors) == ci.MAX_ERRORS and len(warnings) == ci.MAX_WARNINGS
    assert errors[-1][2] == "51 more errors not annotated (90 items failed in all); see the run summary"
    assert warnings[-1][2] == "6 more warnings not annotated; see the run summary"


def test_github_summary_stays_far_below_the_step_limit(tmp_path: Path) -> None:
    outcome = many_failures()
    outcome.resources = [resource(i, "k" * 150 + "|" + "\n" * 10, fetched=i) for i in range(3000)]
    env = github_env(tmp_path)
    publish(outcome, env)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_bytes()
    assert len(summary) <= ci.SUMMARY_BYTES + 200
    assert summary.decode("utf-8").rstrip().endswith("the JSON summary artifact has the whole run.*")


def test_github_failure_list_is_truncated(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    publish(many_failures(), env)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    # 3 resources x (10 listed + 1 line saying 20 more were cut) + 15 skipped deletions = 48 lines
    assert f"(the first {ci.SUMMARY_FAILURES} of 48 lines; the job log has them all)" in summary
    assert (
        "- resources[0] alert: … 20 more failure(s) not listed here (all are counted; the JSON summary lists 20)"
        in summary
    )
    assert "has them all)" not in summary.replace("the job log has them all)", "")
    assert len([line for line in summary.splitlines() if line.startswith("- ")]) == ci.SUMMARY_FAILURES


def test_github_summary_redacts_secrets(tmp_path: Path) -> None:
    outcome = partial()
    outcome.resources[0].add("failed", error="token og-very-secret-1234 leaked")
    env = github_env(tmp_path)
    publish(outcome, env, secrets=("og-very-secret-1234",))
    assert "og-very-secret-1234" not in Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")


def test_github_unwritable_summary_is_a_debug_line_not_a_crash(tmp_path: Path) -> None:
    env = GITHUB | {"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary.md")}
    lines = runner_lines(publish(success(), env))
    assert len(lines) == 1 and github_parse(lines[0])[0] == "debug"


def test_github_without_summary_or_output_files_still_annotates() -> None:
    assert len(runner_lines(publish(partial(), GITHUB))) == 6


# -- Azure DevOps -----------------------------------------------------------------------------------


def test_azure_clean_run_emits_nothing() -> None:
    assert publish(success(), AZURE) == ""


def test_azure_partial_run_logs_issues_and_succeeds_with_issues() -> None:
    lines = runner_lines(publish(partial(), AZURE))
    parsed = [azure_parse(line) for line in lines]
    assert [(command, props.get("type")) for command, props, _ in parsed] == [
        *[("task.logissue", "error")] * 5,
        ("task.logissue", "warning"),
        ("task.complete", None),
    ]
    assert parsed[0][2] == f"resources[1] incident failed: fetch failed: {VSO}"
    assert [data for _, _, data in parsed[1:5]] == [
        f"resources[0] alert: failed item: alert {text}: mapping failed" for text in HOSTILE
    ]
    assert parsed[-1][1] == {"result": "SucceededWithIssues"}
    assert lines[-1].startswith("##vso[task.complete result=SucceededWithIssues;]")
    assert "##vso[task.logissue type=error;]resources[0] alert: failed item: alert 100%AZP25: mapping failed" in lines


def test_azure_failure_logs_errors_without_completing_the_task() -> None:
    parsed = [azure_parse(line) for line in runner_lines(publish(failure(), AZURE))]
    assert [props["type"] for _, props, _ in parsed] == ["error", "error"]
    assert parsed[0][2] == f"opsgenie-export stopped: Port refused the credentials {PWNED}"


def test_azure_issues_are_capped() -> None:
    parsed = [azure_parse(line) for line in runner_lines(publish(many_failures(), AZURE))]
    types = [props.get("type") for _, props, _ in parsed]
    assert types.count("error") == ci.MAX_ERRORS and types.count("warning") == ci.MAX_WARNINGS


# -- stderr logs ------------------------------------------------------------------------------------


def test_one_line_and_defuse_commands() -> None:
    assert one_line(VSO + "\r\x1b[2J") == "x\\n##vso[task.complete result=Succeeded]\\r\\x1b[2J"
    assert defuse_commands("a ##vso[x]b ##[add-mask]c ##VSO[y]") == "a **vso[x]b **[add-mask]c **VSO[y]"
    assert defuse_commands(" ::error::x\n::warning::y") == " \\::error::x\n\\::warning::y"
    assert defuse_commands("::error::x", at_line_start=False) == "::error::x"


def test_command_safe_stream_tracks_line_starts_across_writes() -> None:
    buffer = io.StringIO()
    stream = CommandSafeStream(buffer, ("secret-value",))
    for chunk in ("a ", "::error::no", "\n", "::error::yes secret-value", "\n"):
        stream.write(chunk)
    assert buffer.getvalue() == "a ::error::no\n\\::error::yes ****\n"


def test_summary_and_text_progress_on_stderr_carry_no_command_and_no_control_sequence() -> None:
    stream = io.StringIO()
    console = make_console(stream, color=True)
    events = TextEvents(console)
    outcome = partial()
    for stats in outcome.resources:
        events.resource_started(stats)
        events.resource_done(stats)
    events.message("warning", "note", f"{PWNED}\n{VSO}")
    render_summary(outcome, console)
    text = stream.getvalue()
    assert "\x1b[" not in text
    assert_no_command(text)
    assert "resources[1] incident: 0 fetched in " in text
    assert " → 0 to write, 0 unchanged, 0 filtered, 0 failed (failed: fetch failed" in text
    assert "(failed: fetch failed: x\\n**vso[task.complete" in text
    assert len([line for line in text.splitlines() if line.startswith("resources[0] alert: 6 fetched")]) == 1


def test_no_color_on_a_terminal_has_no_colour_codes() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    render_summary(partial(), make_console(stream, color=False))
    assert not re.search(r"\x1b\[[0-9;]*m", stream.getvalue())


def test_json_log_lines_parse_and_carry_the_fields() -> None:
    stream = io.StringIO()
    events = JsonEvents(stream)
    outcome = partial()
    for stats in outcome.resources:
        events.resource_started(stats)
        events.page_done(stats)
        events.resource_done(stats)
    events.message("info", "blueprints", f"created {VSO}")
    render_end(outcome, make_console(io.StringIO(), color=False), events)
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 8
    for record in records:
        assert {"time", "level", "event", "kind", "counts"} <= set(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert records[2]["counts"] == {
        "fetched": 6,
        "filtered": 0,
        "upserted": 2,
        "unchanged": 0,
        "failed": 4,
        "skipped": 0,
        "merged": 0,
    }
    assert records[6]["message"] == f"created {VSO}"  # lossless, yet ...
    assert_no_command(stream.getvalue())  # ... no runner sees `##vso[`
    done = records[-1]
    assert (done["event"], done["level"], done["result"], done["exitCode"]) == ("run_done", "warning", "partial", 1)
    assert done["counts"]["failed"] == 4 and done["resources"][1]["status"] == "failed"


def test_rich_progress_renders_bars_on_a_terminal_and_stops_cleanly() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100, color_system=None)
    events = RichEvents(console)
    outcome = partial()
    events.resource_started(outcome.resources[0])
    events.page_done(outcome.resources[0])
    events.resource_done(outcome.resources[0])
    events.resource_started(outcome.resources[1])  # the run stops in the middle of this one
    render_end(outcome, console, events)
    text = stream.getvalue()
    assert "resources[0] alert" in text and "6 fetched, 6 processed, 4 failed" in text
    assert "settled" not in text
    assert "Port blueprints" in text
    assert events._progress is None


# -- end to end: the real CLI against the emulators --------------------------------------------------

HOSTILE_BODY = {"message": f"{PWNED}\r\n{VSO} {PERCENT} {PIPE} \x1b[2J key={OPSGENIE_KEY}"}


def fail_incidents(sandbox: Sandbox) -> None:
    """Opsgenie answers every incident listing with a 500 carrying hostile text and the API key."""
    sandbox.opsgenie.faults.add(FaultRule(path="^/v1/incidents", status=500, body=HOSTILE_BODY))


def ci_env(sandbox: Sandbox, tmp_path: Path, runner: dict[str, str]) -> dict[str, str]:
    files = {"GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"), "GITHUB_OUTPUT": str(tmp_path / "output")}
    return sandbox.env | runner | (files if runner is GITHUB else {})


def assert_no_secret(*texts: str) -> None:
    assert_no_secret_leak(*texts)  # the suite's one leak check: every form of every secret


def test_e2e_github_run_with_a_failed_kind(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    fail_incidents(seed_sandbox)
    env = ci_env(seed_sandbox, tmp_path, GITHUB)
    result = run_cli(sync_args("--retries", "1"), env)
    assert result.exit_code == 1, result.output
    parsed = [github_parse(line) for line in runner_lines(result.stdout)]
    titles = {props.get("title") for command, props, _ in parsed if command == "error"}
    assert "resources[1] incident failed" in titles
    assert all(command in ("error", "warning") for command, _, _ in parsed)
    incident = next(message for _, props, message in parsed if props.get("title") == "resources[1] incident failed")
    assert f"{PWNED}\r\n{VSO}" in incident and "\x1b" not in incident  # intact, inside its own command
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    header = "| resource | kind | blueprints | fetched | filtered | upserted | unchanged | failed | skipped | merged |"
    assert header + " status |" in summary
    assert re.search(r"^\| 1 \| incident \| opsGenieIncident \|.*\| failed \|$", summary, re.MULTILINE), summary
    assert "**Result: partial**, exit code 1." in summary
    assert Path(env["GITHUB_OUTPUT"]).read_text() == "exit-code=1\nsummary-result=partial\nwarnings=0\n"
    assert_no_command(result.stderr)
    assert_no_secret(result.stdout, result.stderr, summary)


def test_e2e_azure_run_with_a_failed_kind(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    fail_incidents(seed_sandbox)
    result = run_cli(sync_args("--retries", "1"), ci_env(seed_sandbox, tmp_path, AZURE))
    assert result.exit_code == 1, result.output
    lines = runner_lines(result.stdout)
    parsed = [azure_parse(line) for line in lines]
    assert ("task.logissue", {"type": "error"}) in [(command, props) for command, props, _ in parsed]
    assert any(data.startswith("resources[1] incident failed: ") for _, _, data in parsed)
    assert parsed[-1][:2] == ("task.complete", {"result": "SucceededWithIssues"})
    assert_no_command(result.stderr)
    assert_no_secret(result.stdout, result.stderr)


@pytest.mark.parametrize("runner", [GITHUB, AZURE], ids=["github", "azure"])
def test_e2e_clean_run_has_no_annotation(seed_sandbox: Sandbox, tmp_path: Path, runner: dict[str, str]) -> None:
    env = ci_env(seed_sandbox, tmp_path, runner)
    result = run_cli(sync_args(), env)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    if runner is GITHUB:
        assert "success (exit 0" in Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")


@pytest.mark.parametrize("fail", [False, True], ids=["clean", "failed-kind"])
def test_e2e_json_logs_parse_and_carry_no_secret(seed_sandbox: Sandbox, fail: bool) -> None:
    if fail:
        fail_incidents(seed_sandbox)
    result = run_cli(sync_args("--log-format", "json", "--retries", "1"), seed_sandbox.env)
    assert result.exit_code == (1 if fail else 0), result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records and all({"time", "level", "event", "kind", "counts"} <= set(r) for r in records)
    assert {r["kind"] for r in records if r["event"] == "resource_done"} == {"service", "incident", "alert"}
    assert records[-1]["event"] == "run_done" and records[-1]["exitCode"] == result.exit_code
    assert_no_secret(result.stderr)
    assert_no_command(result.stderr)
    if fail:
        assert "****" in result.stderr  # the key in the API's error message was masked


def test_e2e_output_captured_to_files_has_no_control_sequence(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    fail_incidents(seed_sandbox)
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = os.environ | seed_sandbox.env | {"TERM": "xterm-256color", "FORCE_COLOR": "1"} | GITHUB
    argv = [sys.executable, "-m", "opsgenie_export", *sync_args("--retries", "1")]
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.run(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env, timeout=120)
    assert code.returncode == 1, err.read_text()
    for path in (out, err):
        assert "\x1b" not in path.read_text(encoding="utf-8"), path
    assert "Opsgenie → Port" in err.read_text(encoding="utf-8")
    assert_no_command(err.read_text(encoding="utf-8"))
    assert_no_secret_leak(out.read_text(), err.read_text(), args=argv, env=env)


# -- warnings (items the mapping skips or merges) ------------------------------------------------------


def test_github_warnings_only_run_annotates_warnings_and_exits_0(tmp_path: Path) -> None:
    env = github_env(tmp_path)
    outcome = with_warnings()
    assert outcome.exit_code == 0
    parsed = [github_parse(line) for line in runner_lines(publish(outcome, env))]
    assert [(command, props["title"]) for command, props, _ in parsed] == [
        ("warning", "resources[0] schedule-oncall: items skipped by the mapping"),
        ("warning", "resources[0] schedule-oncall: items merged"),
    ]
    assert "1 item skipped by the mapping" in parsed[0][2] and "sched-9" in parsed[0][2]
    assert "2 items merged into 1 entity" in parsed[1][2] and f"team-1{PWNED}" in parsed[1][2]
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert "success with 2 warnings (exit 0" in summary and "**Warnings** (2" in summary
    assert "| 0 | schedule-oncall | opsgenieSchedule-Oncall | 4 | 0 | 2 | 0 | 0 | 1 | 1 | ok |" in summary
    assert Path(env["GITHUB_OUTPUT"]).read_text() == "exit-code=0\nsummary-result=success\nwarnings=2\n"
    assert_no_command(summary)


def test_strict_turns_warnings_into_exit_1() -> None:
    outcome = with_warnings(strict=True)
    assert outcome.exit_code == 1 and outcome.to_dict()["result"] == "partial"
    assert outcome.to_dict()["warnings"] == outcome.warnings and len(outcome.warnings) == 2


def test_azure_warnings_only_run_logs_warnings_and_succeeds_with_issues() -> None:
    lines = runner_lines(publish(with_warnings(), AZURE))
    parsed = [azure_parse(line) for line in lines]
    assert [(command, props.get("type")) for command, props, _ in parsed] == [
        ("task.logissue", "warning"),
        ("task.logissue", "warning"),
        ("task.complete", None),
    ]
    assert parsed[-1][1] == {"result": "SucceededWithIssues"}
    assert "exit code 0" in parsed[-1][2]
