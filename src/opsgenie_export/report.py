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
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from opsgenie_export.outcome import ResourceStats, RunOutcome, result_word
from opsgenie_export.sync import Events

RESOURCE_COLUMNS = ("fetched", "filtered", "upserted", "unchanged", "failed")
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
        width=None if terminal else 140,
    )


class TextEvents(Events):
    """Plain line-by-line progress on stderr (CI logs)."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._last_page = 0.0

    def _print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False)

    def resource_started(self, stats: ResourceStats) -> None:
        self._print(f"{stats.label}: fetching")

    def page_done(self, stats: ResourceStats) -> None:
        now = time.monotonic()
        if now - self._last_page >= 2.0:
            self._last_page = now
            self._print(f"{stats.label}: {stats.fetched} fetched, {stats.settled} settled, {stats.failed} failed")

    def resource_done(self, stats: ResourceStats) -> None:
        suffix = f" ({stats.status}: {one_line(stats.reason)})" if stats.status != "ok" else ""
        self._print(f"{stats.label}: {stats.fetched} fetched{suffix}")

    def message(self, level: str, event: str, text: str, **fields: Any) -> None:
        if level != "debug":
            self._print(f"{level}: {one_line(text)}")


class RichEvents(Events):
    """Progress bars on a terminal (stderr): one per resource, kept on screen once it is done.

    Opsgenie's listings give no total, so a bar pulses while its kind is fetched and fills when done.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None

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
        self._progress.start()

    def page_done(self, stats: ResourceStats) -> None:
        if self._progress is not None:
            self._progress.update(self._task, counts=_progress_counts(stats))

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
            counts=_progress_counts(stats),
        )
        self.close()

    def message(self, level: str, event: str, text: str, **fields: Any) -> None:
        if level != "debug":
            self.console.print(f"{level}: {one_line(text)}", markup=False, highlight=False)

    def close(self) -> None:
        """Stop the live display (also when a run stops in the middle of a resource)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _progress_counts(stats: ResourceStats) -> str:
    return f"{stats.fetched} fetched · {stats.settled} settled · {stats.failed} failed"


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
    console.print(_resource_table(outcome))
    if outcome.blueprints:
        console.print(_blueprint_table(outcome))
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
    lines = []
    if outcome.fatal:
        lines.append(f"error: {outcome.fatal}")
    for stats in outcome.resources:
        if stats.status not in ("ok", "pending"):
            lines.append(f"{stats.label}: {stats.status}: {stats.reason}")
        lines.extend(f"{stats.label}: {error}" for error in stats.errors[:limit])
    for stats in outcome.blueprints.values():
        if stats.deletion_skipped:
            lines.append(f"{stats.blueprint}: deletion {stats.deletion}")
    return [one_line(line) for line in lines]


def _resource_table(outcome: RunOutcome) -> Table:
    table = Table(title="Opsgenie → Port", title_justify="left")
    for column in ("resource", "kind", "blueprint", *RESOURCE_COLUMNS, "status"):
        table.add_column(column, justify="right" if column in RESOURCE_COLUMNS else "left")
    for stats in outcome.resources:
        counts = [str(getattr(stats, c)) for c in RESOURCE_COLUMNS]
        blueprints = one_line(", ".join(stats.blueprints))
        table.add_row(str(stats.index), one_line(stats.kind), blueprints, *counts, stats.status)
    return table


def _blueprint_table(outcome: RunOutcome) -> Table:
    table = Table(title="Port blueprints", title_justify="left")
    for column in ("blueprint", "upserted", "unchanged", "failed", "deleted", "deletion"):
        table.add_column(column, justify="left" if column in ("blueprint", "deletion") else "right")
    for stats in outcome.blueprints.values():
        table.add_row(
            one_line(stats.blueprint),
            str(stats.upserted),
            str(stats.unchanged),
            str(stats.failed),
            str(stats.deleted),
            one_line(stats.deletion),
        )
    return table


def _style(verdict: str) -> str:
    if verdict.startswith("success"):
        return "yellow" if "warning" in verdict else "green"
    return {"partial": "yellow"}.get(verdict, "red")


def write_summary_json(outcome: RunOutcome, path: Path, secrets: tuple[str, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(outcome.to_dict(), indent=2, default=str) + "\n"
    path.write_text(redact(text, secrets), encoding="utf-8")


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret value with a mask: the last line of defence for any output."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "****")
    return text


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
        for verdict in ("create", "update", "unchanged", "delete"):
            identifiers = entries.get(verdict, [])
            shown = ", ".join(identifiers[:limit]) + (
                f", … ({len(identifiers) - limit} more)" if len(identifiers) > limit else ""
            )
            console.print(
                f"  {verdict} {len(identifiers)}" + (f": {shown}" if identifiers and verdict != "unchanged" else ""),
                markup=False,
            )
    for stats in outcome.blueprints.values():
        if stats.deletion_skipped:
            console.print(f"{stats.blueprint}: deletion {stats.deletion}", markup=False)
