"""Speaking each CI system's language at the end of a run.

- GitHub Actions (`GITHUB_ACTIONS=true`): a Markdown summary appended to `$GITHUB_STEP_SUMMARY`,
  `::error`/`::warning` workflow commands, `exit-code` and `summary-result` in `$GITHUB_OUTPUT`.
- Azure DevOps (`TF_BUILD=True`): `##vso[task.logissue]` lines, and `##vso[task.complete
  result=SucceededWithIssues;]` for a partial result (exit 1) or a run with warnings (exit 0).
- Anything else (Jenkins, terminals): nothing; the summary on stderr and the exit code say it all.

Commands go to stdout, where the runners read them. A clean run (exit 0, no warnings) annotates
nothing; warnings (items the mapping skips or merges) are annotated as warnings. Every
piece of data is escaped as the receiving system specifies and kept on its command's line, so an
alert title holding `::`, `##vso[`, `%` or a newline can never start a command of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO

from opsgenie_export.exit_codes import ExitCode
from opsgenie_export.outcome import RunOutcome, result_word, unaccounted_items
from opsgenie_export.report import RESOURCE_COLUMNS, WARNING_BUCKETS, failure_lines, printable, redact, with_warnings

MAX_ERRORS = 10  # GitHub shows 10 error and 10 warning annotations per step; Azure keeps as many
MAX_WARNINGS = 10
MESSAGE_CHARS = 2_000  # one annotation's message
CELL_CHARS = 200  # one Markdown table cell
SUMMARY_FAILURES = 30  # failure lines listed in the step summary
SUMMARY_BYTES = 256 * 1024  # GitHub drops a step summary above 1 MiB; stay far below
BLUEPRINT_COLUMNS = ("upserted", "unchanged", "failed", "stale", "deleted")


@dataclass(frozen=True)
class Issue:
    level: str  # error | warning
    title: str
    message: str


def detect(environ: Mapping[str, str]) -> str:
    """`github`, `azure` or `` (any other runner or a terminal)."""
    if environ.get("GITHUB_ACTIONS", "").lower() == "true":
        return "github"
    if environ.get("TF_BUILD", "").lower() == "true":
        return "azure"
    return ""


def publish(outcome: RunOutcome, environ: Mapping[str, str], stdout: IO[str], *, secrets: tuple[str, ...] = ()) -> None:
    """Tell the CI system running us about the run, in its own terms (see the module docstring)."""
    system = detect(environ)
    if system == "github":
        _publish_github(outcome, environ, stdout, secrets)
    elif system == "azure":
        _publish_azure(outcome, stdout)
    stdout.flush()


# -- what to annotate -------------------------------------------------------------------------------


def issues(outcome: RunOutcome) -> list[Issue]:
    """Errors then warnings, each capped; nothing at all for a clean run."""
    if outcome.exit_code == ExitCode.OK and not outcome.warnings:
        return []
    total_failed = sum(r.failed for r in outcome.resources)
    totals = f"{total_failed} items failed in all" if total_failed else ""
    errors = _capped(list(_error_issues(outcome)), MAX_ERRORS, "error", totals)
    warnings = _capped(list(_warning_issues(outcome)), MAX_WARNINGS, "warning", "")
    return errors + warnings


def _error_issues(outcome: RunOutcome) -> Iterator[Issue]:
    if outcome.fatal is not None:
        yield Issue("error", "opsgenie-export stopped", str(outcome.fatal))
    for problem in unaccounted_items(outcome):
        yield Issue("error", "opsgenie-export: accounting does not add up (a bug)", problem)
    for stats in outcome.resources:
        if stats.status in ("failed", "truncated"):
            yield Issue("error", f"{stats.label} {stats.status}", stats.reason or stats.status)
    seen: set[str] = set()
    for stats in outcome.resources:
        for error in stats.errors:
            seen.add(error)
            yield Issue("error", f"{stats.label}: failed item", error)
        if stats.failed and not stats.errors:
            yield Issue("error", f"{stats.label}: failed items", f"{stats.failed} of {stats.fetched} items failed")
    for blueprint in outcome.blueprints.values():
        for error in blueprint.errors:
            if error not in seen:
                seen.add(error)
                yield Issue("error", f"{blueprint.blueprint}: failed entity", error)


def _warning_issues(outcome: RunOutcome) -> Iterator[Issue]:
    for stats in outcome.resources:
        for warning in stats.warnings:
            yield Issue("warning", f"{stats.label}: {_warning_title(warning)}", warning)
    for note in outcome.notes:
        yield Issue("warning", "opsgenie-export", note)
    for blueprint in outcome.blueprints.values():
        if blueprint.deletion_skipped:
            message = f"stale entities of {blueprint.blueprint} were not deleted: {blueprint.deletion}"
            yield Issue("warning", f"{blueprint.blueprint}: deletion skipped", message)


def _warning_title(warning: str) -> str:
    return "items skipped by the mapping" if "skipped by the mapping" in warning else "items merged"


def _capped(found: list[Issue], cap: int, level: str, totals: str) -> list[Issue]:
    """At most `cap` issues; beyond it, the last one says how many more there are."""
    if len(found) <= cap:
        return found
    hidden = len(found) - (cap - 1)
    detail = f" ({totals})" if totals else ""
    more = Issue(level, f"{hidden} more {level}s", f"{hidden} more {level}s not annotated{detail}; see the run summary")
    return [*found[: cap - 1], more]


# -- GitHub Actions ---------------------------------------------------------------------------------


def github_message(text: str) -> str:
    """Escape a workflow command's message: `%`, CR and LF."""
    text = printable(text[:MESSAGE_CHARS], newlines=True)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """Escape a workflow command's property value: as a message, plus `:` and `,`."""
    return github_message(text).replace(":", "%3A").replace(",", "%2C")


def github_command(command: str, message: str, **properties: str) -> str:
    props = ",".join(f"{name}={github_property(value)}" for name, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{github_message(message)}"


def _publish_github(outcome: RunOutcome, environ: Mapping[str, str], stdout: IO[str], secrets: tuple[str, ...]) -> None:
    for issue in issues(outcome):
        stdout.write(github_command(issue.level, issue.message, title=issue.title) + "\n")
    summary_path = environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        _append(summary_path, redact(step_summary(outcome), secrets), stdout)
    output_path = environ.get("GITHUB_OUTPUT")
    if output_path:
        outputs = f"exit-code={int(outcome.exit_code)}\nsummary-result={result_word(outcome)}\n"
        outputs += f"warnings={len(outcome.warnings)}\n"
        _append(output_path, outputs, stdout)


def _append(path: str, text: str, stdout: IO[str]) -> None:
    """Append to a runner's file; a failure is logged as a debug line, never raised or fatal."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        stdout.write(github_command("debug", f"opsgenie-export could not write {path}: {exc}") + "\n")


def step_summary(outcome: RunOutcome) -> str:
    """The run as Markdown: verdict, a table per resource and per blueprint, the first failures."""
    verdict = result_word(outcome) + with_warnings(outcome)
    lines = [f"### {outcome.source} → Port: {verdict} (exit {int(outcome.exit_code)}, {outcome.seconds:.1f}s)", ""]
    lines += _resource_table(outcome)
    if outcome.blueprints:
        lines += ["", *_blueprint_table(outcome)]
    if outcome.warnings:
        lines += ["", f"**Warnings** ({len(outcome.warnings)}; exit 1 with --strict)", ""]
        lines += [f"- {markdown_cell(line, CELL_CHARS * 2)}" for line in outcome.warnings[:SUMMARY_FAILURES]]
    failures = failure_lines(outcome)
    if failures:
        shown = failures[:SUMMARY_FAILURES]
        cut = (
            f" (the first {len(shown)} of {len(failures)} lines; the job log has them all)"
            if len(shown) < len(failures)
            else ""
        )
        lines += ["", f"**Failures**{cut}", ""]
        lines += [f"- {markdown_cell(line, CELL_CHARS * 2)}" for line in shown]
    lines += ["", f"**Result: {verdict}**, exit code {int(outcome.exit_code)}."]
    return _within_budget("\n".join(lines) + "\n\n")


def _resource_table(outcome: RunOutcome) -> list[str]:
    columns = (*RESOURCE_COLUMNS, *WARNING_BUCKETS)
    header = ["resource", "kind", "blueprints", *columns, "status"]
    rows = [_row(header), _row(["---", "---", "---", *["--:"] * len(columns), "---"])]
    for stats in outcome.resources:
        counts = [str(getattr(stats, column)) for column in columns]
        cells = [str(stats.index), stats.kind, ", ".join(stats.blueprints), *counts, stats.status]
        rows.append(_row(cells))
    return rows


def _blueprint_table(outcome: RunOutcome) -> list[str]:
    header = ["blueprint", *BLUEPRINT_COLUMNS, "deletion"]
    rows = [_row(header), _row(["---", *["--:"] * len(BLUEPRINT_COLUMNS), "---"])]
    for stats in outcome.blueprints.values():
        rows.append(_row([stats.blueprint, *(str(getattr(stats, c)) for c in BLUEPRINT_COLUMNS), stats.deletion]))
    return rows


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(markdown_cell(cell) for cell in cells) + " |"


def markdown_cell(text: str, limit: int = CELL_CHARS) -> str:
    """Text for a Markdown table cell or list item: no `|` or line break can end it early, no HTML."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = printable(text, newlines=True).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def _within_budget(text: str) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= SUMMARY_BYTES:
        return text
    cut = encoded[:SUMMARY_BYTES].decode("utf-8", errors="ignore").rsplit("\n", 1)[0]
    return cut + "\n\n*Summary truncated; the JSON summary artifact has the whole run.*\n\n"


# -- Azure DevOps -----------------------------------------------------------------------------------


def azure_data(text: str) -> str:
    """Escape a logging command's data: `%`, CR and LF."""
    text = printable(text[:MESSAGE_CHARS], newlines=True)
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def azure_property(text: str) -> str:
    """Escape a logging command's property value: as data, plus `]` and `;`."""
    return azure_data(text).replace("]", "%5D").replace(";", "%3B")


def azure_command(command: str, data: str, **properties: str) -> str:
    props = "".join(f"{name}={azure_property(value)};" for name, value in properties.items())
    return f"##vso[{command}{' ' + props if props else ''}]{azure_data(data)}"


def _publish_azure(outcome: RunOutcome, stdout: IO[str]) -> None:
    for issue in issues(outcome):
        stdout.write(azure_command("task.logissue", f"{issue.title}: {issue.message}", type=issue.level) + "\n")
    if outcome.exit_code == ExitCode.PARTIAL:
        message = "opsgenie-export: partial result (exit code 1); see the run summary"
        stdout.write(azure_command("task.complete", message, result="SucceededWithIssues") + "\n")
    elif outcome.exit_code == ExitCode.OK and outcome.warnings:
        message = f"opsgenie-export: succeeded{with_warnings(outcome)} (exit code 0); see the run summary"
        stdout.write(azure_command("task.complete", message, result="SucceededWithIssues") + "\n")
