"""The run's accounting rendered: progress while it runs, then a summary table on stderr and an
optional JSON summary file. Rich formatting only on a terminal; plain lines otherwise, so a log
file never holds control sequences.

Data from the APIs (titles, messages, identifiers) reaches stderr only flattened onto one line and
through a stream that defuses CI commands: GitHub's runner takes `::cmd::` at a line start and
`##[cmd]` anywhere in a line, Azure's agent `##vso[` anywhere, and both read stderr as well as
stdout. Real workflow commands are written by `ci.publish`, on stdout only.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from opsgenie_export import redaction
from opsgenie_export.errors import InternalError
from opsgenie_export.outcome import ResourceStats, RunOutcome, result_word, unaccounted_items
from opsgenie_export.sync import Events

RESOURCE_COLUMNS = ("fetched", "filtered", "upserted", "unchanged", "failed")
BLUEPRINT_COLUMNS = ("upserted", "unchanged", "failed", "stale", "deleted")
WARNING_BUCKETS = ("skipped", "merged")  # items skipped or merged by the mapping: warnings, not failures


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # every C0/C1 control but tab
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ANYWHERE_PREFIX = re.compile(r"##((?:vso)?)\[", re.IGNORECASE)  # GitHub `##[cmd]`, Azure `##vso[cmd]`
_LINE_START_PREFIX = re.compile(r"(?<=[\r\n])([^\S\r\n]*)::")  # GitHub `::cmd::` after a line break
_TEXT_START_PREFIX = re.compile(r"\A([^\S\r\n]*)::")


def printable(text: str, *, newlines: bool = False) -> str:
    """Control characters (ESC, CR, LF, ...) as visible escapes such as `\\x1b` and `\\n`.

    With `newlines`, CR and LF are kept (for callers that escape them their own way).
    """
    pattern = _CONTROL_BUT_NEWLINES if newlines else _CONTROL
    return pattern.sub(_visible, text)


def one_line(text: str) -> str:
    """Data for a log line: never more than one line, never a terminal control sequence."""
    return printable(text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")


def defuse_commands(text: str, *, at_line_start: bool = True) -> str:
    """Log text that no CI runner can take for a command (`**[`, `**vso[`, `\\::` as Azure's agent does)."""
    text = _ANYWHERE_PREFIX.sub(r"**\1[", text)
    text = _LINE_START_PREFIX.sub(r"\1\\::", text)
    return _TEXT_START_PREFIX.sub(r"\1\\::", text) if at_line_start else text


def make_console(stream: IO[str], *, color: bool) -> Console:
    """A console for stderr: cursor control only on a terminal, colour only when allowed, and never
    anything a CI runner could read as a command."""
    terminal = stream.isatty()
    return Console(
        file=CommandSafeStream(stream),  # type: ignore[arg-type]
        force_terminal=terminal,
        color_system="auto" if color else None,
        no_color=not color,
        highlight=False,
        soft_wrap=not terminal,
        width=None if terminal else _log_width(),
    )


def _log_width() -> int:
    """Width of a log that is not a terminal: COLUMNS when set, else 80 (the tables fit in it;
    plain lines are never wrapped)."""
    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 80


class TextEvents(Events):
    """Plain line-by-line progress on stderr (CI logs)."""

    PROGRESS_EVERY = 10.0  # seconds: a kind that takes longer gets a line this often meanwhile

    def __init__(self, console: Console, quiet: bool = False, *, debug: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.debug = debug
        self._last_line = 0.0
        self._started = 0.0

    def _print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False)

    def resource_started(self, stats: ResourceStats) -> None:
        self._started = self._last_line = time.monotonic()

    def page_done(self, stats: ResourceStats) -> None:
        now = time.monotonic()
        if now - self._last_line >= self.PROGRESS_EVERY:
            self._last_line = now
            self._print(f"{stats.label}: {_progress_counts(stats, now - self._started)} so far")

    def resource_done(self, stats: ResourceStats) -> None:
        """One line per resource: what it fetched and where each item ended."""
        suffix = f" ({stats.status}: {one_line(stats.reason)})" if stats.status != "ok" else ""
        seconds = time.monotonic() - self._started
        self._print(f"{stats.label}: {stats.fetched} fetched in {seconds:.1f}s → {_outcome_counts(stats)}{suffix}")

    def message(self, level: str, event: str, text: str, **fields: Any) -> None:
        if level != "debug" or self.debug:
            self._print(f"{level}: {one_line(text)}")


class RichEvents(Events):
    """Progress bars on a terminal (stderr): one per resource, kept on screen once it is done.

    Where the count is known up front (kinds listed whole before mapping: incidents, services,
    teams, …) the bar has a total; streamed kinds (alerts, users) give none, so their bar pulses
    while fetched and fills when done. Either way the line shows the rate in items per second.
    """

    def __init__(self, console: Console, *, debug: bool = False) -> None:
        self.console = console
        self.debug = debug
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = 0.0

    def resource_started(self, stats: ResourceStats) -> None:
        self.close()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.fields[counts]}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
            redirect_stdout=False,  # stdout carries data and CI commands, never progress
        )
        self._task = self._progress.add_task(stats.label, total=None, counts="fetching")
        self._started = time.monotonic()
        self._progress.start()

    def page_done(self, stats: ResourceStats) -> None:
        if self._progress is not None:
            counts = _progress_counts(stats, time.monotonic() - self._started)
            self._progress.update(self._task, total=stats.total, completed=stats.settled, counts=counts)

    def resource_done(self, stats: ResourceStats) -> None:
        if self._progress is None:
            return
        status = "" if stats.status == "ok" else f" ({stats.status}: {one_line(stats.reason)})"
        total = max(stats.fetched, 1)
        self._progress.update(
            self._task,
            description=f"{stats.label}{status}",
            total=total,
            completed=total,
            counts=_progress_counts(stats, time.monotonic() - self._started),
        )
        self.close()

    def message(self, level: str, event: str, text: str, **fields: Any) -> None:
        if level != "debug" or self.debug:
            self.console.print(f"{level}: {one_line(text)}", markup=False, highlight=False)

    def close(self) -> None:
        """Stop the live display (also when a run stops in the middle of a resource)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _outcome_counts(stats: ResourceStats) -> str:
    """Where a resource's items went when its listing ends; writes may still be on their way to
    Port (the tables at the end have the final counts)."""
    to_write = max(0, stats.fetched - stats.settled) + stats.upserted
    return f"{to_write} to write, {stats.unchanged} unchanged, {stats.filtered} filtered, {stats.failed} failed"


def _progress_counts(stats: ResourceStats, seconds: float) -> str:
    """'1200 of 5000 fetched, 1180 processed, 0 failed, 600/s': processed = written, unchanged,
    filtered, failed or skipped; the total only where the listing gave it."""
    of = f" of {stats.total}" if stats.total is not None else ""
    rate = f", {stats.fetched / seconds:.0f}/s" if seconds > 0.5 else ""
    return f"{stats.fetched}{of} fetched, {stats.settled} processed, {stats.failed} failed{rate}"


def safe_json(data: Any, indent: int | None = None) -> str:
    """JSON that no CI runner can mistake for a command: `\\u005b` is JSON for `[`, so the text
    parses to the same value while `##[`/`##vso[` never appear in it."""
    return _ANYWHERE_PREFIX.sub(r"##\1\\u005b", json.dumps(data, default=str, indent=indent))


class JsonEvents(Events):
    """`--log-format json`: one JSON object per line on stderr, each with time, level, event, kind
    (null when the record is about no single kind) and counts (null when it carries none)."""

    def __init__(self, stream: IO[str] = sys.stderr) -> None:
        self.stream = stream

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record: dict[str, Any] = {"time": now, "level": level, "event": event, "kind": None, "counts": None}
        record.update(fields)
        self.stream.write(safe_json(record) + "\n")  # ensure_ascii: one line, no control character
        self.stream.flush()

    def _counts(self, stats: ResourceStats) -> dict[str, int]:
        return {column: getattr(stats, column) for column in (*RESOURCE_COLUMNS, *WARNING_BUCKETS)}

    def resource_started(self, stats: ResourceStats) -> None:
        self._emit("info", "resource_started", kind=stats.kind, resource=stats.index, counts=self._counts(stats))

    def page_done(self, stats: ResourceStats) -> None:
        self._emit("debug", "page", kind=stats.kind, resource=stats.index, counts=self._counts(stats))

    def resource_done(self, stats: ResourceStats) -> None:
        level = "info" if stats.status == "ok" and not stats.failed and not stats.warnings else "warning"
        self._emit(
            level,
            "resource_done",
            kind=stats.kind,
            resource=stats.index,
            status=stats.status,
            counts=self._counts(stats),
        )

    def message(self, level: str, event: str, text: str, **fields: Any) -> None:
        self._emit(level, event, message=text, **fields)

    def summary(self, outcome: RunOutcome) -> None:
        """The run's result as the last record, in place of the summary tables."""
        verdict = result_word(outcome)
        columns = (*RESOURCE_COLUMNS, *WARNING_BUCKETS)
        totals = {column: sum(getattr(r, column) for r in outcome.resources) for column in columns}
        success = "warning" if outcome.warnings else "info"
        self._emit(
            {"success": success, "partial": "warning"}.get(verdict, "error"),
            "run_done",
            counts=totals,
            result=verdict,
            exitCode=int(outcome.exit_code),
            seconds=round(outcome.seconds, 3),
            fatal=str(outcome.fatal) if outcome.fatal else None,
            resources=[
                {"resource": r.index, "kind": r.kind, "status": r.status, "reason": r.reason, "counts": self._counts(r)}
                for r in outcome.resources
            ],
            blueprints={
                b.blueprint: {
                    "upserted": b.upserted,
                    "unchanged": b.unchanged,
                    "failed": b.failed,
                    "deleted": b.deleted,
                    "deletion": b.deletion,
                }
                for b in outcome.blueprints.values()
            },
            failures=failure_lines(outcome),
            warnings=outcome.warnings,
        )


def render_end(outcome: RunOutcome, console: Console, events: Events | None = None) -> None:
    """End of a run on stderr: stop any progress display, then the summary (a JSON record under
    `--log-format json`, the tables otherwise)."""
    if isinstance(events, RichEvents):
        events.close()
    if isinstance(events, JsonEvents):
        events.summary(outcome)
    else:
        render_summary(outcome, console)


def render_summary(outcome: RunOutcome, console: Console) -> None:
    """The per-kind and per-blueprint tables, then failures and the verdict."""
    console.print(_fitted(_resource_table, outcome, console))
    if outcome.blueprints:
        console.print(_fitted(_blueprint_table, outcome, console))
    for line in warning_lines(outcome):
        console.print(line, markup=False, style="yellow")
    for line in failure_lines(outcome):
        console.print(line, markup=False)
    verdict = result_word(outcome) + with_warnings(outcome)
    console.print(
        f"{verdict}: exit {int(outcome.exit_code)} in {outcome.seconds:.1f}s", markup=False, style=_style(verdict)
    )


def warning_lines(outcome: RunOutcome) -> list[str]:
    """One line per warning (items skipped or merged by the mapping, run notes)."""
    return [one_line(f"warning: {warning}") for warning in outcome.warnings]


def with_warnings(outcome: RunOutcome) -> str:
    count = len(outcome.warnings)
    return f" with {count} warning{'s' if count != 1 else ''}" if count else ""


def failure_lines(outcome: RunOutcome, limit: int = 10) -> list[str]:
    """The fatal error, each failed kind, the first `limit` failures per resource and blueprint —
    with how many were left out — and every skipped deletion with its reason."""
    lines = []
    if outcome.fatal:  # an internal error is its own line: `internal error: <type>: <message>`
        lines.append(str(outcome.fatal) if isinstance(outcome.fatal, InternalError) else f"error: {outcome.fatal}")
    for problem in unaccounted_items(outcome):
        lines.append(f"error: accounting does not add up (a bug; please report it): {problem}")
    for stats in outcome.resources:
        if stats.status not in ("ok", "pending"):
            lines.append(f"{stats.label}: {stats.status}: {stats.reason}")
        lines.extend(_cut(stats.label, stats.errors, stats.failed, limit))
    for blueprint in outcome.blueprints.values():
        lines.extend(_cut(blueprint.blueprint, blueprint.errors, len(blueprint.errors), limit))
        if blueprint.deletion_skipped:
            lines.append(f"{blueprint.blueprint}: deletion {blueprint.deletion}")
    return [one_line(line) for line in lines]


def _cut(label: str, errors: list[str], failed: int, limit: int) -> list[str]:
    """The first `limit` messages, then one line saying how many failures are not listed."""
    shown = errors[:limit]
    lines = [f"{label}: {error}" for error in shown]
    left_out = max(failed, len(errors)) - len(shown)
    if left_out > 0:
        kept = f"; the JSON summary lists {len(errors)}" if len(errors) > len(shown) else ""
        lines.append(f"{label}: … {left_out} more failure(s) not listed here (all are counted{kept})")
    return lines


# The tables fit 80 columns: no vertical rules, two spaces between columns (one where that makes
# the table fit), short status words
# (a skipped deletion's reason is a line below the table), numbers never cut, and a long name
# wraps onto a second line instead of losing its end to an ellipsis.
_TABLE_STYLE: dict[str, Any] = {
    "box": box.SIMPLE_HEAD,
    "show_edge": False,
    "padding": (0, 1),
    "pad_edge": False,
    "collapse_padding": True,
    "title_justify": "left",
}


def _fitted(build: Any, outcome: RunOutcome, console: Console) -> Table:
    """The table with two spaces between columns, or one when that is what makes it fit; when
    nothing makes it fit, as wide as it needs (rich would squeeze the names to nothing)."""
    table = build(outcome)
    if console.measure(table, options=console.options.update_width(10_000)).maximum > console.width:
        table = build(outcome, tight=True)
        if _narrowest(table) > console.width:  # narrower than the numbers: wider lines, names kept
            table.width = console.measure(table, options=console.options.update_width(10_000)).maximum
    return table


def _narrowest(table: Table) -> int:
    """The width below which rich would squeeze a name column (kind, blueprint) to nothing: every
    number column whole, every wrapping column at least 8 characters, one space between."""
    total = len(table.columns) - 1
    for column in table.columns:
        widest = max(len(str(text)) for text in (column.header, *column._cells))
        total += widest if column.no_wrap else min(widest, 8)
    return total


def _resource_table(outcome: RunOutcome, tight: bool = False) -> Table:
    table = Table(title=f"{outcome.source} → Port", **{**_TABLE_STYLE, "padding": (0, 0) if tight else (0, 1)})
    warned = any(stats.warnings for stats in outcome.resources)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("kind", overflow="fold")
    for column in RESOURCE_COLUMNS:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    if warned:
        table.add_column("warnings", justify="right", no_wrap=True, min_width=8)
    table.add_column("status", no_wrap=True, min_width=max([6, *(len(stats.status) for stats in outcome.resources)]))
    for stats in outcome.resources:
        counts = [str(getattr(stats, c)) for c in RESOURCE_COLUMNS]
        if warned:
            counts.append(str(sum(getattr(stats, bucket) for bucket in WARNING_BUCKETS)))
        table.add_row(str(stats.index), one_line(stats.kind), *counts, stats.status)
    return table


def _blueprint_table(outcome: RunOutcome, tight: bool = False) -> Table:
    table = Table(title="Port blueprints", **{**_TABLE_STYLE, "padding": (0, 0) if tight else (0, 1)})
    table.add_column("blueprint", overflow="fold")
    for column in BLUEPRINT_COLUMNS:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    table.add_column("deletion", overflow="fold")
    for stats in outcome.blueprints.values():
        counts = [str(getattr(stats, column)) for column in BLUEPRINT_COLUMNS]
        table.add_row(one_line(stats.blueprint), *counts, deletion_word(stats.deletion))
    return table


def deletion_word(deletion: str) -> str:
    """'skipped: <reason>' → 'skipped' (the reason is listed below the table); others as they are."""
    return deletion.split(":", 1)[0] if deletion.startswith(("skipped", "none")) else deletion


def _style(verdict: str) -> str:
    if verdict.startswith("success"):
        return "yellow" if "warning" in verdict else "green"
    return {"partial": "yellow"}.get(verdict, "red")


def write_summary_json(outcome: RunOutcome, path: Path, secrets: tuple[str, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(outcome.to_dict(), indent=2, default=str) + "\n"
    path.write_text(redact(text, secrets), encoding="utf-8")


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every form of every secret with a mask (see `redaction`): the last line of defence
    for any output."""
    return redaction.redact(text, secrets)


class RedactingStream:
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, stream: IO[str], secrets: tuple[str, ...]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._stream.write(redact(text, self._secrets))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8")


class CommandSafeStream(RedactingStream):
    """A log stream (stderr) whose text no CI runner can take for a command; see `defuse_commands`."""

    def __init__(self, stream: IO[str], secrets: tuple[str, ...] = ()) -> None:
        super().__init__(stream, secrets)
        self._at_line_start = True

    def write(self, text: str) -> int:
        safe = defuse_commands(text, at_line_start=self._at_line_start)
        if text:
            self._at_line_start = text[-1] in "\r\n"
        super().write(safe)
        return len(text)


def redacting(stream: IO[str], secrets: tuple[str, ...]) -> IO[str]:
    return RedactingStream(stream, secrets)  # type: ignore[return-value]


def render_plan(outcome: RunOutcome, console: Console, limit: int = 50) -> None:
    """`--dry-run`: per blueprint, what a real run would create, update, leave and delete."""
    if outcome.blueprints_to_create:
        console.print(f"create blueprints: {', '.join(outcome.blueprints_to_create)}", markup=False)
    for blueprint, entries in sorted(outcome.plan.items()):
        console.print(f"{blueprint}:", markup=False)
        for verdict in ("create", "update", "unchanged", "delete", "stale"):
            if verdict == "stale" and verdict not in entries:
                continue
            identifiers = entries.get(verdict, [])
            shown = ", ".join(identifiers[:limit]) + (
                f", … ({len(identifiers) - limit} more)" if len(identifiers) > limit else ""
            )
            label = "stale, not deleted (deletion skipped)" if verdict == "stale" else verdict
            console.print(
                f"  {label} {len(identifiers)}" + (f": {shown}" if identifiers and verdict != "unchanged" else ""),
                markup=False,
            )
    for stats in outcome.blueprints.values():
        if stats.deletion_skipped:
            console.print(f"{stats.blueprint}: deletion {stats.deletion}", markup=False)
