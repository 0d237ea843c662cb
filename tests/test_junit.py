"""`--junit-xml`: the run as JUnit XML — one case per resource and per blueprint's reconciliation,
failures and warnings with their reasons, secrets masked — checked as the CI systems read it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opsgenie_export.errors import AuthError, ConfigError
from opsgenie_export.junit import junit_xml
from opsgenie_export.outcome import BlueprintStats, ResourceStats, RunOutcome
from opsgenie_export.sandbox.server import FaultRule

from conftest import OPSGENIE_KEY, PORT_SECRET, REPO, Sandbox, default_mapping_with, run_cli, sync_args

SECRET = "s3cr&t<value>\"'"

# What Jenkins' junit, GitLab's and Azure's JUnit readers accept (the Ant JUnit schema, with the
# `skipped` element they all understand): element → allowed attributes and children.
SHAPE: dict[str, tuple[set[str], set[str]]] = {
    "testsuites": ({"name", "tests", "failures", "errors", "skipped", "time"}, {"testsuite"}),
    "testsuite": (
        {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"},
        {"properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), {"property"}),
    "property": ({"name", "value"}, set()),
    "testcase": ({"classname", "name", "time"}, {"failure", "error", "skipped", "system-out", "system-err"}),
    "failure": ({"message", "type"}, set()),
    "error": ({"message", "type"}, set()),
    "skipped": ({"message"}, set()),
    "system-out": (set(), set()),
    "system-err": (set(), set()),
}


def parse_junit(text: str) -> ET.Element:
    """Parse as XML and check every element against SHAPE and the counts against the cases."""
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    for element in root.iter():
        attributes, children = SHAPE[element.tag]
        assert set(element.attrib) <= attributes, (element.tag, element.attrib)
        assert {child.tag for child in element} <= children, element.tag
    assert root.tag == "testsuites"
    for suite in [root, *root.iter("testsuite")]:
        cases = list(suite.iter("testcase"))
        assert int(suite.get("tests", -1)) == len(cases)
        for tag, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(attribute, -1)) == sum(case.find(tag) is not None for case in cases)
    for case in root.iter("testcase"):
        assert case.get("classname") and case.get("name")
        assert sum(case.find(tag) is not None for tag in ("failure", "error", "skipped")) <= 1
    return root


def counts(root: ET.Element) -> tuple[int, int, int, int]:
    return tuple(int(root.get(name)) for name in ("tests", "failures", "errors", "skipped"))  # type: ignore[return-value]


def case(root: ET.Element, name: str) -> ET.Element:
    [found] = [c for c in root.iter("testcase") if c.get("name") == name]
    return found


# -- outcomes ---------------------------------------------------------------------------------------


def resource(index: int, kind: str, **counts: int) -> ResourceStats:
    stats = ResourceStats(index, kind, [f"opsGenie{kind.title()}"], status="ok")
    for bucket, count in counts.items():
        stats.add(bucket, count)
    return stats


def success() -> RunOutcome:
    alerts = resource(0, "alert", fetched=5, upserted=4, unchanged=1)
    services = resource(1, "service", fetched=2, upserted=2)
    blueprints = {
        "opsGenieAlert": BlueprintStats("opsGenieAlert", upserted=4, unchanged=1, entities=5, deletion="done"),
        "opsGenieService": BlueprintStats("opsGenieService", upserted=2, entities=2, deleted=3, deletion="done"),
    }
    return RunOutcome(resources=[alerts, services], blueprints=blueprints, seconds=1.25)


def partial() -> RunOutcome:
    """Items that failed to map, a kind that failed, a kind that is fine; entities that failed to be
    written, a skipped deletion, a clean blueprint."""
    alerts = resource(0, "alert", fetched=6, upserted=4)
    alerts.add("failed", 2, error=f"alert a-1: mapping field title: token {SECRET} rejected")
    incidents = ResourceStats(1, "incident", ["opsGenieIncident"], status="failed", reason="Opsgenie answered 500")
    services = resource(2, "service", fetched=2, upserted=2)
    blueprints = {
        "opsGenieAlert": BlueprintStats("opsGenieAlert", upserted=4, failed=1, entities=5, deletion="done"),
        "opsGenieIncident": BlueprintStats("opsGenieIncident", deletion="skipped: incident listing failed"),
        "opsGenieService": BlueprintStats("opsGenieService", upserted=2, entities=2, deletion="done"),
    }
    blueprints["opsGenieAlert"].errors.append("opsGenieAlert/a-2: Port refused: 422 invalid property")
    return RunOutcome(resources=[alerts, incidents, services], blueprints=blueprints, seconds=3.0)


def failed() -> RunOutcome:
    """Credentials refused after the first kind: the rest of the run never happened."""
    alerts = resource(0, "alert", fetched=0)
    alerts.status, alerts.reason = "failed", "run stopped"
    incidents = ResourceStats(1, "incident", ["opsGenieIncident"])  # pending: never reached
    blueprints = {"opsGenieAlert": BlueprintStats("opsGenieAlert")}  # deletion "not run"
    fatal = AuthError(f"Port refused the credentials (client secret {SECRET})")
    return RunOutcome(resources=[alerts, incidents], blueprints=blueprints, fatal=fatal)


# -- the report -------------------------------------------------------------------------------------


def test_a_successful_run_is_all_green() -> None:
    root = parse_junit(junit_xml(success().to_dict()))
    assert counts(root) == (4, 0, 0, 0)
    [suite] = root.iter("testsuite")
    assert suite.get("name") == "opsgenie-export sync" and suite.get("time") == "1.250"
    assert {p.get("name"): p.get("value") for p in suite.iter("property")} == {
        "exitCode": "0",
        "result": "success",
        "dryRun": "false",
    }
    names = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert names == [
        ("opsgenie-export.resources", "resources[0] alert"),
        ("opsgenie-export.resources", "resources[1] service"),
        ("opsgenie-export.blueprints", "opsGenieAlert reconciliation"),
        ("opsgenie-export.blueprints", "opsGenieService reconciliation"),
    ]
    out = case(root, "resources[0] alert").findtext("system-out")
    assert "fetched 5, filtered 0, upserted 4, unchanged 1, failed 0; status ok" in out
    assert "deleted 3; deletion done" in case(root, "opsGenieService reconciliation").findtext("system-out")


def test_a_partial_run_has_one_failure_per_failing_resource_and_blueprint() -> None:
    root = parse_junit(junit_xml(partial().to_dict(), (SECRET,)))
    assert counts(root) == (6, 4, 0, 0)
    alerts = case(root, "resources[0] alert").find("failure")
    assert alerts.get("message") == "2 of 6 items failed" and alerts.get("type") == "failed-items"
    assert "failed item: alert a-1: mapping field title" in alerts.text
    incidents = case(root, "resources[1] incident").find("failure")
    assert incidents.get("message") == "resources[1] incident failed: Opsgenie answered 500"
    written = case(root, "opsGenieAlert reconciliation").find("failure")
    assert written.get("message") == "opsGenieAlert: 1 entities failed"
    assert "422 invalid property" in written.text
    deletion = case(root, "opsGenieIncident reconciliation").find("failure")
    assert deletion.get("type") == "deletion-skipped"
    assert deletion.get("message") == "opsGenieIncident: deletion skipped: incident listing failed"
    assert case(root, "resources[2] service").find("failure") is None
    assert case(root, "opsGenieService reconciliation").find("failure") is None


def test_a_failed_run_has_an_error_and_skips_what_it_never_reached() -> None:
    root = parse_junit(junit_xml(failed().to_dict(), (SECRET,)))
    assert counts(root) == (4, 1, 1, 2)
    error = case(root, "run").find("error")
    assert error.get("type") == "authentication" and "Port refused the credentials" in error.get("message")
    assert case(root, "resources[0] alert").find("failure").get("message") == "resources[0] alert failed: run stopped"
    for name in ("resources[1] incident", "opsGenieAlert reconciliation"):
        assert case(root, name).find("skipped").get("message").startswith("not ")


def test_a_configuration_error_is_one_erroring_case() -> None:
    root = parse_junit(junit_xml(RunOutcome(fatal=ConfigError("--mapping x.yaml: file not found")).to_dict()))
    assert counts(root) == (1, 0, 1, 0)
    assert case(root, "run").find("error").get("type") == "configuration"


def test_secrets_are_masked_in_every_form() -> None:
    for outcome in (partial(), failed()):
        text = junit_xml(outcome.to_dict(), (SECRET,))
        assert "****" in text
        for form in (SECRET, "s3cr&amp;t", "s3cr&amp;t&lt;value&gt;", "s3cr"):
            assert form not in text


def test_hostile_text_still_makes_valid_xml() -> None:
    outcome = partial()
    hostile = "bad \x00 nul \x1b[31m esc \x0c ff \ud800 surrogate \uffff ]]> cdata </failure> & <tag>"
    outcome.resources[0].errors.append(hostile)
    outcome.resources[1].reason = hostile + "\nsecond line"
    root = parse_junit(junit_xml(outcome.to_dict()))
    text = case(root, "resources[0] alert").find("failure").text
    assert "\\x00 nul \\x1b[31m esc" in text and "</failure> & <tag>" in text
    assert "\n" not in case(root, "resources[1] incident").find("failure").get("message")


def with_warnings(*, strict: bool = False) -> RunOutcome:
    """Items the mapping skipped and merged (warnings), and a run-level note."""
    outcome = success()
    alerts = outcome.resources[0]
    alerts.add("fetched", 2)  # two more items: one skipped, one merged
    alerts.add("skipped", 1)
    alerts.add("merged", 1)
    alerts.merged_items, alerts.merged_entities = 2, 1
    alerts.sample("skipped", "a-9 (identifier null)")
    alerts.sample("merged", "alert-a-1")
    outcome.notes.append("link cache unreadable: starting afresh")
    outcome.strict = strict
    return outcome


def test_warnings_are_reported_without_failing_a_case() -> None:
    outcome = with_warnings()
    assert outcome.exit_code == 0 and len(outcome.resources[0].warnings) == 2
    root = parse_junit(junit_xml(outcome.to_dict()))
    assert counts(root) == (4, 0, 0, 0)
    out = case(root, "resources[0] alert").findtext("system-out")
    assert "warning: 1 item skipped by the mapping" in out and "a-9 (identifier null)" in out
    assert "warning: 2 items merged into 1 entity" in out and "skipped 1, merged 1" in out
    [suite] = root.iter("testsuite")  # run-level: only what no resource shows already
    assert suite.findtext("system-out") == "warning: link cache unreadable: starting afresh"
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["warnings"] == "3"


def test_strict_makes_a_resource_with_warnings_fail() -> None:
    outcome = with_warnings(strict=True)
    assert outcome.exit_code == 1
    root = parse_junit(junit_xml(outcome.to_dict()))
    assert counts(root) == (4, 1, 0, 0)
    failure = case(root, "resources[0] alert").find("failure")
    assert failure.get("message") == "2 warnings (--strict)" and failure.get("type") == "warnings"
    assert "skipped by the mapping" in failure.text


def test_a_failed_exit_code_is_never_an_all_green_report() -> None:
    summary = success().to_dict() | {"exitCode": 1, "result": "partial"}  # a cause no case shows
    root = parse_junit(junit_xml(summary))
    assert counts(root) == (5, 1, 0, 0)
    assert case(root, "run").find("failure").get("message") == "the run ended with exit code 1 (partial)"


def test_long_failure_lists_are_capped_with_a_pointer_to_the_summary() -> None:
    outcome = success()
    for item in range(80):
        outcome.resources[0].errors.append(f"alert {item}: bad")
    outcome.resources[0].failed = 80
    text = case(parse_junit(junit_xml(outcome.to_dict())), "resources[0] alert").find("failure").text
    assert text.count("\n") == 50 and text.endswith("… 30 more lines; the JSON summary has them all")


# -- through the CLI --------------------------------------------------------------------------------


def _run(sandbox: Sandbox, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, ET.Element]:
    report, summary = tmp_path / "reports" / "junit.xml", tmp_path / "summary.json"
    args = sync_args("--summary-json", str(summary), "--junit-xml", str(report), *extra)
    result = run_cli(args, env or sandbox.env)
    text = report.read_text(encoding="utf-8")
    assert OPSGENIE_KEY not in text and PORT_SECRET not in text
    root = parse_junit(text)
    if summary.exists():
        data = json.loads(summary.read_text())
        assert len(data["resources"]) + len(data["blueprints"]) + bool(data["fatal"]) == counts(root)[0]
    return result.exit_code, root


def test_cli_success(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    code, root = _run(seed_sandbox, tmp_path)
    assert code == 0
    mapping_resources = (REPO / "mapping.yaml").read_text().count("- kind:")
    assert counts(root)[1:] == (0, 0, 0) and counts(root)[0] > mapping_resources


def test_cli_partial(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    mapping = default_mapping_with(tmp_path / "broken.yaml", ("title: .name\n", "title: .name + .tags\n"))
    code, root = _run(seed_sandbox, tmp_path, "--mapping", str(mapping))
    assert code == 1
    [service] = [c for c in root.iter("testcase") if c.get("name", "").endswith(" service")]
    failure = service.find("failure")
    assert failure.get("message") == "2 of 2 items failed" and "title" in failure.text
    assert counts(root)[1] >= 1 and counts(root)[2] == 0


@pytest.mark.parametrize(
    ("change", "code", "kind"),
    [({"PORT_CLIENT_ID": ""}, 2, "configuration"), ({"PORT_CLIENT_SECRET": "wrong-secret-123"}, 3, "authentication")],
    ids=["config-error", "auth-error"],
)
def test_cli_failed_runs_still_write_the_report(
    seed_sandbox: Sandbox, tmp_path: Path, change: dict[str, str], code: int, kind: str
) -> None:
    env = {k: v for k, v in {**seed_sandbox.env, **change}.items() if v}
    exit_code, root = _run(seed_sandbox, tmp_path, env=env)
    assert exit_code == code
    assert counts(root)[2] == 1 and case(root, "run").find("error").get("type") == kind


def test_cli_report_that_cannot_be_written_fails_the_run(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = run_cli(sync_args("--junit-xml", str(blocker / "junit.xml")), seed_sandbox.env)
    assert result.exit_code == 1
    assert "--junit-xml" in result.stderr and "could not write the report" in result.stderr


def test_cli_usage_errors_and_internal_errors_still_write_the_report(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    report = tmp_path / "usage.xml"
    result = run_cli(sync_args("--workers", "0", "--junit-xml", str(report)), seed_sandbox.env)
    assert result.exit_code == 2
    root = parse_junit(report.read_text(encoding="utf-8"))
    assert counts(root) == (1, 0, 1, 0)
    assert case(root, "run").find("error").get("message").startswith("usage: ")

    # An Opsgenie answer the code does not anticipate (alerts that are not objects): an internal error.
    body = {"data": [17, 18], "took": 0.01, "requestId": "r-1"}
    seed_sandbox.opsgenie.faults.add(FaultRule(path=r"^/v2/alerts$", status=200, body=body))
    report = tmp_path / "internal.xml"
    result = run_cli(sync_args("--junit-xml", str(report)), seed_sandbox.env)
    assert result.exit_code == 1, result.output
    root = parse_junit(report.read_text(encoding="utf-8"))
    error = case(root, "run").find("error")
    assert error.get("type") == "fatal" and error.get("message").startswith("internal error: ")
