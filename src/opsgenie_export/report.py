"""The run's accounting rendered: progress while it runs, then a summary table on stderr and an
optional JSON summary file. Rich formatting only on a terminal; plain lines otherwise, so a log
file never holds control sequences.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from opsgenie_export.outcome import ResourceStats, RunOutcome, result_word
from opsgenie_export.sync import Events

RESOURCE_COLUMNS = ("fetched", "filtered", "upserted", "unchanged", "failed")


def make_console(stream: IO[str], *, color: bool) -> Console:
    """A console that writes plain text unless the stream is a terminal and colour is allowed."""
    terminal = stream.isatty()
    return Console(
        file=stream,
        force_terminal=terminal and color,
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
        suffix = f" ({stats.status}: {stats.reason})" if stats.status != "ok" else ""
        self._print(f"{stats.label}: {stats.fetched} fetched{suffix}")

    def message(self, level: str, event: str, text: str, **fields: Any) -> None:
        if level != "debug":
            self._print(f"{level}: {text}")


class JsonEvents(Events):
    """`--log-format json`: one JSON object per line on stderr."""

    def __init__(self, stream: IO[str] = sys.stderr) -> None:
        self.stream = stream

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level, "event": event}
        record.update(fields)
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()

    def _counts(self, stats: ResourceStats) -> dict[str, int]:
        return {column: getattr(stats, column) for column in RESOURCE_COLUMNS}

    def resource_started(self, stats: ResourceStats) -> None:
        self._emit("info", "resource_started", kind=stats.kind, resource=stats.index)

    def page_done(self, stats: ResourceStats) -> None:
        self._emit("debug", "page", kind=stats.kind, resource=stats.index, counts=self._counts(stats))

    def resource_done(self, stats: ResourceStats) -> None:
        level = "info" if stats.status == "ok" and not stats.failed else "warning"
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


def render_summary(outcome: RunOutcome, console: Console) -> None:
    """The per-kind and per-blueprint tables, then failures and the verdict."""
    console.print(_resource_table(outcome))
    if outcome.blueprints:
        console.print(_blueprint_table(outcome))
    for line in failure_lines(outcome):
        console.print(line, markup=False)
    verdict = result_word(outcome)
    console.print(
        f"{verdict}: exit {int(outcome.exit_code)} in {outcome.seconds:.1f}s", markup=False, style=_style(verdict)
    )


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
    return lines


def _resource_table(outcome: RunOutcome) -> Table:
    table = Table(title="Opsgenie → Port", title_justify="left")
    for column in ("resource", "kind", "blueprint", *RESOURCE_COLUMNS, "status"):
        table.add_column(column, justify="right" if column in RESOURCE_COLUMNS else "left")
    for stats in outcome.resources:
        counts = [str(getattr(stats, c)) for c in RESOURCE_COLUMNS]
        table.add_row(str(stats.index), stats.kind, ", ".join(stats.blueprints), *counts, stats.status)
    return table


def _blueprint_table(outcome: RunOutcome) -> Table:
    table = Table(title="Port blueprints", title_justify="left")
    for column in ("blueprint", "upserted", "unchanged", "failed", "deleted", "deletion"):
        table.add_column(column, justify="left" if column in ("blueprint", "deletion") else "right")
    for stats in outcome.blueprints.values():
        table.add_row(
            stats.blueprint,
            str(stats.upserted),
            str(stats.unchanged),
            str(stats.failed),
            str(stats.deleted),
            stats.deletion,
        )
    return table


def _style(verdict: str) -> str:
    return {"success": "green", "partial": "yellow"}.get(verdict, "red")


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


def redacting(stream: IO[str], secrets: tuple[str, ...]) -> IO[str]:
    return RedactingStream(stream, secrets)  # type: ignore[return-value]
