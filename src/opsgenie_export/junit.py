"""`--junit-xml PATH`: the run as a JUnit XML report, the one test-result format that Jenkins
(`junit`), GitLab (`artifacts:reports:junit`) and Azure DevOps (`PublishTestResults@2`) all render.

Built from the run's summary dictionary (`RunOutcome.to_dict()`, the same data as `--summary-json`),
so every exit path that produces a summary can produce this report too.

- One test case per resource of the mapping (classname `opsgenie-export.resources`): a failure when
  the kind failed or was truncated or any of its items failed, skipped when the run stopped before
  the kind was fetched.
- One test case per blueprint's reconciliation (classname `opsgenie-export.blueprints`): a failure
  when entities failed to be written or the deletion of stale entities was skipped, skipped when
  the run stopped before the blueprint was reconciled.
- One more case, `run`, with an error, only when the run stopped on a fatal error (configuration,
  credentials refused, interrupted, an unexpected failure) — or with a failure when the exit code
  says the run failed and no other case shows why: the report is never green for a failed run.

Warnings (items the mapping skips or merges) are not failures: they are listed in their case's
`system-out`, run-level notes in the suite's; with `--strict` (which makes them exit 1) a resource's
warnings fail its case.

Counts and warnings go to each case's `system-out` (Jenkins, GitLab and Azure show it with the
case) and to properties. Every text is stripped of characters XML 1.0 cannot carry and masked for
secrets before it is written.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from opsgenie_export.report import printable, redact

SUITE_NAME = "opsgenie-export sync"
RESOURCE_CLASS = "opsgenie-export.resources"
BLUEPRINT_CLASS = "opsgenie-export.blueprints"
RUN_CLASS = "opsgenie-export"
MAX_DETAIL_LINES = 50  # error and warning lines per case; the JSON summary has the rest
MESSAGE_CHARS = 500  # a failure's `message` attribute (a one-line headline)

_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")  # surrogates and non-characters: invalid in XML 1.0
_RESOURCE_COUNTS = ("fetched", "filtered", "upserted", "unchanged", "failed")
_BLUEPRINT_COUNTS = ("upserted", "unchanged", "failed", "existing", "stale", "deleted")


def junit_xml(summary: Mapping[str, Any], secrets: tuple[str, ...] = (), *, timestamp: datetime | None = None) -> str:
    """The JUnit XML document (a `testsuites` root holding one `testsuite`) for a run summary."""
    clean = _Cleaner(secrets)
    cases = [
        *(_resource_case(resource, summary, clean) for resource in summary.get("resources") or []),
        *(_blueprint_case(blueprint, summary, clean) for blueprint in summary.get("blueprints") or []),
    ]
    if summary.get("fatal"):
        cases.append(_run_case(summary, clean))
    elif _int(summary.get("exitCode")) and not any(_failed(case) for case in cases):
        cases.append(_unexplained_exit_case(summary, clean))
    seconds = _seconds(summary.get("seconds"))
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(case.find("failure") is not None for case in cases)),
        "errors": str(sum(case.find("error") is not None for case in cases)),
        "skipped": str(sum(case.find("skipped") is not None for case in cases)),
        "time": seconds,
    }
    root = ET.Element("testsuites", {"name": "opsgenie-export", **counts})
    when = (timestamp or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **counts, "timestamp": when})
    suite.set("hostname", clean(socket.gethostname()) or "localhost")
    properties = ET.SubElement(suite, "properties")
    for name, value in _run_properties(summary).items():
        ET.SubElement(properties, "property", {"name": name, "value": clean(value)})
    suite.extend(cases)
    run_warnings = _run_level_warnings(summary)
    if run_warnings:
        ET.SubElement(suite, "system-out").text = clean(_lines(f"warning: {w}" for w in run_warnings))
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return clean.mask_escaped('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")


def write_junit_xml(summary: Mapping[str, Any], path: Path, secrets: tuple[str, ...] = ()) -> None:
    """Write the report (creating the folder); an OSError is the caller's to report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(summary, secrets), encoding="utf-8")


# -- test cases -------------------------------------------------------------------------------------


def _resource_case(resource: Mapping[str, Any], summary: Mapping[str, Any], clean: _Cleaner) -> ET.Element:
    label = str(resource.get("label") or f"resources[{resource.get('index')}] {resource.get('kind')}")
    case = _case(RESOURCE_CLASS, clean(label), resource)
    status = str(resource.get("status") or "")
    failed = _int(resource.get("failed"))
    errors = _texts(resource.get("errors"))
    if status in ("failed", "truncated"):
        reason = str(resource.get("reason") or status)
        detail = [f"{status}: {reason}", *(f"failed item: {e}" for e in errors)]
        _add(case, "failure", clean, f"{label} {status}: {reason}", status, detail)
    elif failed:
        fetched = _int(resource.get("fetched"))
        detail = [f"failed item: {e}" for e in errors] or [f"{failed} items failed (no message kept)"]
        _add(case, "failure", clean, f"{failed} of {fetched} items failed", "failed-items", detail)
    elif status == "pending":
        _add(case, "skipped", clean, _not_reached(summary, "fetched"), None, [])
    elif summary.get("strict") and _texts(resource.get("warnings")):
        warnings = _texts(resource.get("warnings"))
        _add(case, "failure", clean, f"{len(warnings)} warnings (--strict)", "warnings", warnings)
    counts = ", ".join(f"{name} {_int(resource.get(name))}" for name in _RESOURCE_COUNTS)
    blueprints = ", ".join(_texts(resource.get("blueprints")))
    out = [f"kind {resource.get('kind')} → {blueprints or 'no blueprint'}: {counts}; status {status or 'unknown'}"]
    out += _other_counts(resource, (*_RESOURCE_COUNTS, "index"))
    out += [f"warning: {w}" for w in _texts(resource.get("warnings"))]
    _system_out(case, clean, out)
    return case


def _blueprint_case(blueprint: Mapping[str, Any], summary: Mapping[str, Any], clean: _Cleaner) -> ET.Element:
    name = str(blueprint.get("blueprint") or "?")
    case = _case(BLUEPRINT_CLASS, clean(f"{name} reconciliation"), blueprint)
    deletion = str(blueprint.get("deletion") or "")
    failed = _int(blueprint.get("failed"))
    errors = _texts(blueprint.get("errors"))
    problems = []
    if failed:
        problems.append(f"{failed} entities failed")
    if deletion.startswith("skipped"):
        problems.append(f"deletion {deletion}")
    if problems:
        detail = [*(f"failed entity: {e}" for e in errors), *(p for p in problems if p.startswith("deletion"))]
        kind = "failed-entities" if failed else "deletion-skipped"
        _add(case, "failure", clean, f"{name}: {'; '.join(problems)}", kind, detail)
    elif deletion.startswith("not run"):
        _add(case, "skipped", clean, _not_reached(summary, "reconciled"), None, [])
    counts = ", ".join(f"{column} {_int(blueprint.get(column))}" for column in _BLUEPRINT_COUNTS)
    out = [f"blueprint {name}: {counts}; deletion {deletion or 'unknown'}"]
    out += _other_counts(blueprint, _BLUEPRINT_COUNTS)
    out += [f"warning: {w}" for w in _texts(blueprint.get("warnings"))]
    _system_out(case, clean, out)
    return case


def _run_case(summary: Mapping[str, Any], clean: _Cleaner) -> ET.Element:
    case = ET.Element("testcase", {"classname": RUN_CLASS, "name": "run"})
    fatal = str(summary.get("fatal"))
    kind = {2: "configuration", 3: "authentication"}.get(_int(summary.get("exitCode")), "fatal")
    _add(case, "error", clean, fatal, kind, [fatal, f"exit code {summary.get('exitCode')}"])
    return case


def _unexplained_exit_case(summary: Mapping[str, Any], clean: _Cleaner) -> ET.Element:
    case = ET.Element("testcase", {"classname": RUN_CLASS, "name": "run"})
    message = f"the run ended with exit code {summary.get('exitCode')} ({summary.get('result')})"
    _add(case, "failure", clean, message, "exit-code", [message])
    return case


def _failed(case: ET.Element) -> bool:
    return case.find("failure") is not None or case.find("error") is not None


def _run_level_warnings(summary: Mapping[str, Any]) -> list[str]:
    """The run's warnings less those already shown with their resource (`<label>: <warning>`)."""
    shown = {
        f"{resource.get('label')}: {warning}"
        for resource in summary.get("resources") or []
        for warning in _texts(resource.get("warnings"))
    }
    return [warning for warning in _texts(summary.get("warnings")) if warning not in shown]


def _not_reached(summary: Mapping[str, Any], what: str) -> str:
    fatal = summary.get("fatal")
    return f"not {what}: the run stopped first ({fatal})" if fatal else f"not {what}"


# -- elements ---------------------------------------------------------------------------------------


def _case(classname: str, name: str, data: Mapping[str, Any]) -> ET.Element:
    attributes = {"classname": classname, "name": name}
    if isinstance(data.get("seconds"), int | float):
        attributes["time"] = _seconds(data["seconds"])
    return ET.Element("testcase", attributes)


def _add(case: ET.Element, tag: str, clean: _Cleaner, message: str, kind: str | None, detail: list[str]) -> None:
    attributes = {"message": clean(_headline(message))}
    if kind:
        attributes["type"] = kind
    element = ET.SubElement(case, tag, attributes)
    if detail:
        element.text = clean(_lines(detail))


def _system_out(case: ET.Element, clean: _Cleaner, lines: list[str]) -> None:
    ET.SubElement(case, "system-out").text = clean(_lines(lines))


def _lines(lines: Iterable[str]) -> str:
    kept = list(lines)
    hidden = len(kept) - MAX_DETAIL_LINES
    if hidden > 0:
        kept = [*kept[:MAX_DETAIL_LINES], f"… {hidden} more lines; the JSON summary has them all"]
    return "\n".join(kept)


def _headline(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def _run_properties(summary: Mapping[str, Any]) -> dict[str, str]:
    properties = {
        "exitCode": str(summary.get("exitCode")),
        "result": str(summary.get("result")),
        "dryRun": str(bool(summary.get("dryRun"))).lower(),
    }
    if summary.get("warnings"):
        properties["warnings"] = str(len(_texts(summary.get("warnings"))))
    if summary.get("strict"):
        properties["strict"] = "true"
    return properties


def _other_counts(data: Mapping[str, Any], shown: tuple[str, ...]) -> list[str]:
    """Counters beyond the headline ones (e.g. entities, unprocessed, buckets added later)."""
    extra = {k: v for k, v in data.items() if k not in shown and isinstance(v, int) and not isinstance(v, bool)}
    return [", ".join(f"{name} {value}" for name, value in extra.items())] if extra else []


def _texts(value: Any) -> list[str]:
    """A list of messages (strings, or objects carrying a `message`) as strings."""
    if not isinstance(value, list):
        return []
    return [str(item.get("message", item)) if isinstance(item, dict) else str(item) for item in value]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _seconds(value: Any) -> str:
    return f"{float(value):.3f}" if isinstance(value, int | float) and not isinstance(value, bool) else "0.000"


class _Cleaner:
    """Text fit for XML 1.0 with every secret masked: applied to every value before it is written."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(secret for secret in secrets if secret)

    def __call__(self, text: str) -> str:
        text = redact(text, self.secrets)
        return _NOT_XML.sub("\ufffd", printable(text, newlines=True))

    def mask_escaped(self, document: str) -> str:
        """Last line of defence: a secret in its XML-escaped forms, too."""
        forms = {form for secret in self.secrets for form in (secret, escape(secret), quoteattr(secret)[1:-1])}
        return redact(document, tuple(forms))
