"""Command line: parses options, builds Settings, runs a command, maps its outcome to an exit code.

Exit codes: 0 success, also with warnings (items the mapping skips or merges) · 1 partial (failed
kinds or entities, truncation, skipped deletion; warnings with --strict) ·
2 usage/configuration error (before any request to Port) · 3 authentication/permission refused ·
130 SIGINT · 143 SIGTERM.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

from opsgenie_export import __version__
from opsgenie_export.ci import publish
from opsgenie_export.errors import AuthError, ConfigError, ExportError, InternalError
from opsgenie_export.exit_codes import ExitCode
from opsgenie_export.junit import write_junit_xml
from opsgenie_export.mapping import compile_mapping, load_blueprints, load_mapping, validate_mapping_file
from opsgenie_export.outcome import RunOutcome
from opsgenie_export.port.client import PortClient
from opsgenie_export.report import (
    JsonEvents,
    RichEvents,
    TextEvents,
    make_console,
    redact,
    redacting,
    render_end,
    render_plan,
    render_summary,
    safe_json,
    write_summary_json,
)
from opsgenie_export.settings import Options, Settings, known_secrets, resolve
from opsgenie_export.sync import Events, RunOptions, resource_query, run_sync
from opsgenie_export.transport import StopSignal, WaitBudget, log_requests

HELP = """Mirror an Opsgenie account into Port's software catalog in one run.

Exit codes: 0 everything written (warnings, e.g. items the mapping skips or merges, included) ·
1 partial (a kind or entities failed, a kind was truncated, a deletion was skipped; warnings
with --strict) · 2 usage or configuration error, found before any request to Port (or, for a
blueprint or field Port lacks, right after reading Port's blueprints, before any Opsgenie request) ·
3 Opsgenie or Port refused the credentials (401/403) · 130/143 interrupted by SIGINT/SIGTERM.
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(StrEnum):
    text = "text"
    json = "json"


class Region(StrEnum):
    us = "us"
    eu = "eu"


class Mode(StrEnum):
    refetch = "refetch"
    payload = "payload"


RegionOpt = Annotated[
    Region | None, typer.Option(case_sensitive=False, help="Opsgenie region shortcut (instead of --opsgenie-url).")
]
LogFormatOpt = Annotated[Format, typer.Option(case_sensitive=False, help="Progress and logs on stderr.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary, warnings and errors.")]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="No colours (also: NO_COLOR=1).")]
DEBUG_ENV = "OPSGENIE_EXPORT_DEBUG"
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Also log every HTTP request (method, URL, status, time; secrets masked), and the traceback of an "
        f"internal error (also {DEBUG_ENV}=1).",
    ),
]
CaBundleOpt = Annotated[
    Path | None, typer.Option(help="CA bundle (PEM) for private certificate authorities (env REQUESTS_CA_BUNDLE).")
]
EnvFile = Annotated[Path | None, typer.Option("--env-file", help="Read variables from this file instead of ./.env.")]
NoEnvFile = Annotated[bool, typer.Option("--no-env-file", help="Do not read any .env file.")]
MappingOpt = Annotated[
    Path | None, typer.Option("--mapping", help="Mapping file (default ./mapping.yaml, else the packaged default).")
]
BlueprintsOpt = Annotated[
    Path | None, typer.Option("--blueprints", help="Folder of blueprint JSON files (default ./blueprints).")
]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source", help="Where items come from: opsgenie or jsm (env OPSGENIE_EXPORT_SOURCE; default opsgenie)."
    ),
]
JsmSiteOpt = Annotated[
    str | None, typer.Option("--jsm-site", help="JSM: https://<site>.atlassian.net (env JSM_SITE_URL).")
]
JsmCloudIdOpt = Annotated[
    str | None,
    typer.Option("--jsm-cloud-id", help="JSM: the site's cloud id (env JSM_CLOUD_ID; default: read from the site)."),
]
JsmApiUrlOpt = Annotated[
    str | None,
    typer.Option("--jsm-api-url", help="JSM: API URL (env JSM_API_URL; default https://api.atlassian.com)."),
]
JsmOrgIdOpt = Annotated[
    str | None,
    typer.Option("--jsm-org-id", help="JSM: Atlassian organization id, for team members (env JSM_ORG_ID)."),
]
JsmJqlOpt = Annotated[
    str | None,
    typer.Option(
        "--jsm-incident-jql",
        help='JSM: JQL selecting incidents (env JSM_INCIDENT_JQL; default issuetype = "[System] Incident").',
    ),
]


class ReportingCommand(TyperCommand):
    """A command whose usage errors (unknown option, bad value) leave the same artifacts as any
    other outcome: with `--log-format json` a `config_error` and a `run_done` record instead of
    plain text, with `--output json` a JSON error object on stdout, and the `--summary-json` file —
    read from the raw arguments, since parsing them is what failed."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        raw = list(args)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:  # click's UsageError, BadParameter, NoSuchOption…
            if getattr(exc, "exit_code", None) == int(ExitCode.CONFIG) and _report_usage_error(exc, raw):
                raise typer.Exit(int(ExitCode.CONFIG)) from None
            raise


def _report_usage_error(exc: typer.TyperException, raw: list[str]) -> bool:
    """Artifacts of a usage error; True when its JSON records replace click's plain text."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    summary = _raw_option(raw, "--summary-json")
    junit = _raw_option(raw, "--junit-xml")
    json_log = (_raw_option(raw, "--log-format") or "").lower() == "json"
    _report_early(
        ConfigError(f"usage: {message} (see --help)"),
        secrets=known_secrets(),
        color=False,
        summary_json=Path(summary) if summary and _summary_path_problem(Path(summary)) is None else None,
        junit_xml=Path(junit) if junit else None,
        log_format="json" if json_log else "none",
        output=(_raw_option(raw, "--output") or "text").lower(),
        debug=False,
        exit_now=False,
    )
    return json_log


def _raw_option(raw: Sequence[str], name: str) -> str | None:
    """The last value of `name` in raw arguments (`--name value` or `--name=value`)."""
    found = None
    for position, argument in enumerate(raw):
        if argument == name and position + 1 < len(raw):
            found = raw[position + 1]
        elif argument.startswith(f"{name}="):
            found = argument.split("=", 1)[1]
    return found


def _reports_internal_errors(command: Callable[..., None]) -> Callable[..., None]:
    """An exception the code did not anticipate (a bug) ends the command with one line,
    `internal error: <type>: <message>` (redacted), exit 1 and the command's usual artifacts;
    the traceback only with --debug or OPSGENIE_EXPORT_DEBUG=1, redacted as well."""

    @functools.wraps(command)
    def guarded(**params: Any) -> None:
        try:
            command(**params)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            summary = params.get("summary_json")
            _report_early(
                InternalError(exc),
                secrets=known_secrets(params.get("opsgenie_token"), params.get("port_client_secret")),
                color=not params.get("no_color") and not os.environ.get("NO_COLOR"),
                summary_json=summary if summary and _summary_path_problem(summary) is None else None,
                junit_xml=params.get("junit_xml"),
                log_format=str(params.get("log_format") or "text"),
                output=str(params.get("output") or "text"),
                debug=bool(params.get("debug")),
            )

    return guarded


def _debugging(flag: bool) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _print_traceback(error: BaseException | None, debug: bool, secrets: tuple[str, ...]) -> None:
    """With --debug, the traceback of an internal error (masked) on stderr."""
    if not isinstance(error, InternalError) or not _debugging(debug):
        return
    cause = error.cause
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    redacting(sys.stderr, secrets).write(text)


def _report_early(
    fatal: ExportError,
    *,
    secrets: tuple[str, ...],
    color: bool,
    summary_json: Path | None,
    junit_xml: Path | None,
    log_format: str,
    output: str,
    debug: bool,
    exit_now: bool = True,
) -> None:
    """A command that stopped before or outside a run (configuration or usage error, internal
    error) reports like a run: one error line (or `config_error` + `run_done` JSON records), the
    JSON error object on stdout with --output json, the summary file, JUnit report and CI
    annotations."""
    outcome = RunOutcome(fatal=fatal)
    code = int(outcome.exit_code)
    stderr = redacting(sys.stderr, secrets)
    console = make_console(stderr, color=color)
    if log_format == "json":
        events = JsonEvents(stderr)
        event = "config_error" if isinstance(fatal, ConfigError) else "error"
        events.message("error", event, str(fatal), exitCode=code)
        events.summary(outcome)
    elif log_format != "none":
        line = str(fatal) if isinstance(fatal, InternalError) else f"error: {fatal}"
        console.print(line, markup=False, style="red")
    _print_traceback(fatal, debug, secrets)
    summary = redact(safe_json(outcome.to_dict(), indent=2), secrets) + "\n"
    if output == "json" or summary_json == Path("-"):  # never both: that combination is refused
        sys.stdout.write(summary)
    if summary_json and summary_json != Path("-"):
        write_summary_json(outcome, summary_json, secrets)
    _write_junit(outcome.to_dict(), junit_xml, secrets, console)
    publish(outcome, os.environ, redacting(sys.stderr if output == "json" else sys.stdout, secrets), secrets=secrets)
    if exit_now:
        raise typer.Exit(code)


def _summary_path_problem(path: Path) -> str | None:
    """Why the summary file could not be written there (checked before the run), or None."""
    if path == Path("-"):
        return None
    if path.is_dir():
        return f"--summary-json {path}: is a directory; give a file path such as {path / 'summary.json'}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--summary-json {path}: cannot create its folder ({exc.strerror or exc})"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"--summary-json {path}: not writable"
    return None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsgenie-export {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Mirror an Opsgenie account into Port's software catalog in one run."""


@app.command(cls=ReportingCommand)
@_reports_internal_errors
def sync(
    mapping: MappingOpt = None,
    blueprints: BlueprintsOpt = None,
    region: RegionOpt = None,
    opsgenie_url: Annotated[str | None, typer.Option(help="Opsgenie API URL (env OPSGENIE_API_URL).")] = None,
    opsgenie_token: Annotated[
        str | None, typer.Option(help="Opsgenie API key; prefer the env OPSGENIE_API_TOKEN.", show_default=False)
    ] = None,
    port_url: Annotated[str | None, typer.Option(help="Port API URL (env PORT_BASE_URL).")] = None,
    port_client_id: Annotated[str | None, typer.Option(help="Port client id (env PORT_CLIENT_ID).")] = None,
    port_client_secret: Annotated[
        str | None, typer.Option(help="Port client secret; prefer the env PORT_CLIENT_SECRET.", show_default=False)
    ] = None,
    initialize_port_resources: Annotated[
        bool | None,
        typer.Option(
            "--initialize-port-resources/--no-initialize-port-resources",
            help="Create missing blueprints from the blueprints folder (never overwrites).",
        ),
    ] = None,
    env_file: EnvFile = None,
    no_env_file: NoEnvFile = False,
    source: SourceOpt = None,
    jsm_site: JsmSiteOpt = None,
    jsm_cloud_id: JsmCloudIdOpt = None,
    jsm_api_url: JsmApiUrlOpt = None,
    jsm_org_id: JsmOrgIdOpt = None,
    jsm_incident_jql: JsmJqlOpt = None,
    ca_bundle: CaBundleOpt = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where alert→incident links and mapped items are kept between runs (default ~/.cache/opsgenie-export)."
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Ask every incident for its alerts, map every item; read and write no cache."),
    ] = False,
    summary_json: Annotated[
        Path | None, typer.Option(help="Write the run's summary as JSON to this file ('-': stdout).")
    ] = None,
    junit_xml: Annotated[
        Path | None, typer.Option(help="Write the run as a JUnit XML report (Jenkins, GitLab, Azure DevOps).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=32,
            help="Most requests in flight per API; below it the number adapts to latency, 429s and rate limits.",
        ),
    ] = 16,
    max_wait: Annotated[
        float, typer.Option(min=0, help="Total seconds the run may spend waiting on retries and rate limits.")
    ] = 600.0,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds before one HTTP request times out.")] = 30.0,
    retries: Annotated[int, typer.Option(min=0, max=20, help="Retries of a failed request (5xx, timeouts).")] = 5,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fetch, map and read Port, print the plan; write nothing.")
    ] = False,
    no_delete: Annotated[bool, typer.Option("--no-delete", help="Never delete stale entities.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit 1 on warnings too (items the mapping skips with a null identifier, merged items)."
        ),
    ] = False,
    output: Annotated[
        Format,
        typer.Option(
            case_sensitive=False,
            help="stdout: text = nothing but a --dry-run plan (the tables go to stderr); json = the summary or plan.",
        ),
    ] = Format.text,
    log_format: LogFormatOpt = Format.text,
    quiet: QuietOpt = False,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Fetch every kind the mapping names, map it with JQ and upsert it into Port."""
    options = Options(
        opsgenie_token=opsgenie_token,
        opsgenie_url=opsgenie_url,
        region=region,
        port_client_id=port_client_id,
        port_client_secret=port_client_secret,
        port_url=port_url,
        mapping=mapping,
        blueprints=blueprints,
        initialize_port_resources=initialize_port_resources,
        env_file=env_file,
        no_env_file=no_env_file,
        ca_bundle=ca_bundle,
        cache_dir=cache_dir,
        no_cache=no_cache,
        source=source,
        jsm_site=jsm_site,
        jsm_cloud_id=jsm_cloud_id,
        jsm_api_url=jsm_api_url,
        jsm_org_id=jsm_org_id,
        jsm_incident_jql=jsm_incident_jql,
    )
    color = not no_color and not os.environ.get("NO_COLOR")
    secrets = known_secrets(opsgenie_token, port_client_secret)
    console = make_console(redacting(sys.stderr, secrets), color=color)
    summary_problem = _summary_path_problem(summary_json) if summary_json else None
    try:
        if summary_json == Path("-") and output == "json":
            raise ConfigError(
                "--summary-json '-' (stdout) cannot be used with --output json, which already writes there"
            )
        if summary_problem:
            raise ConfigError(summary_problem)
        settings = resolve(options)
        secrets = settings.secrets
        console = make_console(redacting(sys.stderr, secrets), color=color)
        config, compiled, blueprint_files = _prepare(settings)
    except ConfigError as exc:  # the same artifacts as a run: error line or records, JSON object, files
        report = {"color": color, "log_format": str(log_format), "output": str(output), "debug": debug}
        usable = None if summary_problem or (summary_json == Path("-") and output == "json") else summary_json
        _report_early(exc, secrets=secrets, summary_json=usable, junit_xml=junit_xml, **report)
        return
    run_options = RunOptions(
        workers=workers,
        max_wait=max_wait,
        timeout=timeout,
        max_retries=retries,
        dry_run=dry_run,
        no_delete=no_delete,
        strict=strict,
        blueprints=blueprint_files,
    )
    events: Events = (
        JsonEvents(redacting(sys.stderr, settings.secrets))
        if log_format == "json"
        else RichEvents(console, debug=debug)
        if sys.stderr.isatty() and not quiet
        else TextEvents(console, quiet, debug=debug)
    )
    if debug:
        log_requests(lambda text: events.message("debug", "request", text))
    for warning in settings.warnings:
        events.message("warning", "env_file", warning)
    try:
        outcome = _run_with_signals(
            lambda stop: run_sync(settings, config, compiled, run_options, events=events, stop=stop)
        )
    finally:
        log_requests(None)
    _finish(outcome, console, settings, summary_json, events, output, junit_xml, debug)


@app.command(cls=ReportingCommand)
@_reports_internal_errors
def validate(
    mapping: MappingOpt = None,
    blueprints: BlueprintsOpt = None,
    from_port: Annotated[
        bool,
        typer.Option("--from-port", help="Check against Port's blueprints (needs PORT_CLIENT_ID/SECRET)."),
    ] = False,
    port_url: Annotated[str | None, typer.Option(help="Port API URL for --from-port (env PORT_BASE_URL).")] = None,
    ca_bundle: CaBundleOpt = None,
    env_file: EnvFile = None,
    no_env_file: NoEnvFile = False,
    source: SourceOpt = None,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check a mapping: YAML, kinds, JQ, filters, and properties/relations against the blueprints
    of the blueprints folder (offline) or of Port (--from-port)."""
    color = not no_color and not os.environ.get("NO_COLOR")
    console = make_console(sys.stderr, color=color)
    options = Options(
        mapping=mapping,
        blueprints=blueprints,
        env_file=env_file,
        no_env_file=no_env_file,
        port_url=port_url,
        ca_bundle=ca_bundle,
        source=source,
    )
    try:
        settings = resolve(options, need_credentials=False)
        console = make_console(redacting(sys.stderr, settings.secrets), color=color)
        for warning in settings.warnings:
            console.print(f"warning: {warning}", markup=False)
        blueprint_files = _port_blueprints(settings) if from_port else load_blueprints(settings.blueprints_dir)
    except ConfigError as exc:
        _fail(console, exc, ExitCode.CONFIG)
    except AuthError as exc:
        _fail(console, exc, ExitCode.AUTH)
    except ExportError as exc:
        _fail(console, exc, ExitCode.PARTIAL)
    found = validate_mapping_file(settings.mapping_path, blueprint_files)
    problems = [problem.for_file(str(settings.mapping_path)) for problem in found]
    problems += [
        f"{settings.mapping_path}: {problem}" for problem in _query_problems(settings.mapping_path, settings.source)
    ]
    for problem in problems:
        console.print(problem, markup=False)
    if problems:
        console.print(f"{len(problems)} problem(s) found", markup=False, style="red")
        raise typer.Exit(int(ExitCode.CONFIG))
    where = f"in Port ({settings.port_url})" if from_port else f"of {_blueprints_origin(settings)}"
    console.print(f"{settings.mapping_path}: valid against {len(blueprint_files)} blueprints {where}", markup=False)


def _port_blueprints(settings: Settings) -> dict[str, dict[str, Any]]:
    if not settings.port_client_id or not settings.port_client_secret:
        raise ConfigError("--from-port needs PORT_CLIENT_ID and PORT_CLIENT_SECRET (environment or .env)")
    ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
    client = PortClient(
        settings.port_url,
        settings.port_client_id,
        settings.port_client_secret,
        budget=WaitBudget(60.0),
        ca_bundle=ca_bundle,
    )
    client.credentials_origin = settings.credential_origins()[1]
    try:
        return client.list_blueprints()
    finally:
        client.close()


def _blueprints_origin(settings: Settings) -> str:
    origin = settings.origin("blueprints")
    if origin == "packaged default":
        return "the packaged default blueprints"
    return f"the blueprints folder {settings.blueprints_dir}"


def _prepare(settings: Settings) -> tuple[Any, Any, dict[str, dict[str, Any]]]:
    """Everything that can fail on configuration, checked before any request (exit 2)."""
    config = load_mapping(settings.mapping_path)
    compiled = compile_mapping(config)
    for resource in config.resources:
        resource_query(resource, settings.source)  # a bad apiQueryParams is a configuration error, found now
    if not settings.blueprints_dir.is_dir():
        raise ConfigError(f"--blueprints {settings.blueprints_dir}: folder not found")
    blueprint_files = load_blueprints(settings.blueprints_dir)
    return config, compiled, blueprint_files


def _query_problems(mapping_path: Path, source: str = "opsgenie") -> list[str]:
    """Selector filters that cannot become an Opsgenie query (when the mapping itself loads)."""
    try:
        config = load_mapping(mapping_path)
    except ConfigError:
        return []  # already listed by validate_mapping_file
    problems = []
    for resource in config.resources:
        try:
            resource_query(resource, source)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def _run_with_signals(run: Any) -> RunOutcome:
    """Run with SIGINT/SIGTERM turned into a stop signal that every wait and loop checks."""
    stop = StopSignal()
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda number, frame: stop.set(number))
    try:
        return run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _finish(
    outcome: RunOutcome,
    console: Any,
    settings: Settings,
    summary_json: Path | None,
    events: Events | None = None,
    output: str = "text",
    junit_xml: Path | None = None,
    debug: bool = False,
) -> None:
    if summary_json and summary_json != Path("-"):  # first: if it fails after all, what follows says so
        try:
            write_summary_json(outcome, summary_json, settings.secrets)
        except OSError as exc:
            outcome.fatal = outcome.fatal or ExportError(f"--summary-json {summary_json}: could not be written ({exc})")
    render_end(outcome, console, events)
    _print_traceback(outcome.fatal, debug, settings.secrets)
    if output == "json":
        sys.stdout.write(redact(safe_json(outcome.to_dict(), indent=2), settings.secrets) + "\n")
    elif outcome.dry_run:
        render_plan(outcome, make_console(redacting(sys.stdout, settings.secrets), color=False))
    if summary_json == Path("-"):
        sys.stdout.write(redact(safe_json(outcome.to_dict(), indent=2), settings.secrets) + "\n")
    junit_written = _write_junit(outcome.to_dict(), junit_xml, settings.secrets, console)
    # With --output json stdout is data: workflow commands go to stderr, which both runners also read.
    annotations = sys.stderr if output == "json" else sys.stdout
    publish(outcome, os.environ, redacting(annotations, settings.secrets), secrets=settings.secrets)
    code = outcome.exit_code
    raise typer.Exit(int(ExitCode.PARTIAL if code == ExitCode.OK and not junit_written else code))


def _write_junit(summary: dict[str, Any], path: Path | None, secrets: tuple[str, ...], console: Any) -> bool:
    """Write --junit-xml (when asked); False when it could not be written (said on stderr)."""
    if path is None:
        return True
    try:
        write_junit_xml(summary, path, secrets)
    except OSError as exc:
        console.print(f"error: --junit-xml {path}: could not write the report: {exc}", markup=False, style="red")
        return False
    return True


def _fail(console: Any, error: ExportError, code: ExitCode) -> NoReturn:
    console.print(f"error: {error}", markup=False, style="red")
    raise typer.Exit(int(code))


@app.command()
def demo(
    alerts: Annotated[int, typer.Option(min=0, help="Generated alerts besides the seed data.")] = 120,
    incidents: Annotated[int, typer.Option(min=0, help="Generated incidents besides the seed data.")] = 12,
    services: Annotated[int, typer.Option(min=0, help="Generated services besides the seed data.")] = 8,
    sample: Annotated[int, typer.Option(min=0, help="Entities to show per blueprint.")] = 2,
    source: Annotated[
        str, typer.Option("--source", help="Read the sandbox account from opsgenie or from jsm (its JSM face).")
    ] = "opsgenie",
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours (also: NO_COLOR=1).")] = False,
) -> None:
    """Start the built-in sandbox (emulated Opsgenie, JSM and Port on 127.0.0.1) and run a real sync."""
    from opsgenie_export.sandbox.demo import run_demo

    if source not in ("opsgenie", "jsm"):
        raise typer.BadParameter(f"{source!r} is not one of opsgenie, jsm", param_hint="--source")
    color = not no_color and not os.environ.get("NO_COLOR")
    console = make_console(sys.stderr, color=color)
    outcome, samples = run_demo(
        alerts=alerts, incidents=incidents, services=services, sample=sample, console=console, source=source
    )
    render_summary(outcome, console)
    for blueprint, entities in samples.items():
        console.print(f"\nPort received ({blueprint}, {len(entities)} of the entities shown):", markup=False)
        for entity in entities:
            console.print_json(data=entity)
    raise typer.Exit(int(outcome.exit_code))


@app.command()
def sandbox(
    env_file: Annotated[
        Path, typer.Option("--env-file", help="Where to write the emulators' URLs and sandbox credentials.")
    ] = Path("sandbox.env"),
    alerts: Annotated[int, typer.Option(min=0, help="Generated alerts besides the seed data.")] = 120,
    incidents: Annotated[int, typer.Option(min=0, help="Generated incidents besides the seed data.")] = 12,
    services: Annotated[int, typer.Option(min=0, help="Generated services besides the seed data.")] = 8,
) -> None:
    """Serve the emulated Opsgenie and Port APIs on 127.0.0.1 until Ctrl-C, for trying the real
    commands: `sync`, `validate` and `serve` with `--env-file sandbox.env`."""
    import threading

    from opsgenie_export.sandbox.demo import serve_sandbox

    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda number, frame: stop.set()) for signum in (2, 15)}
    try:
        serve_sandbox(
            env_file,
            alerts=alerts,
            incidents=incidents,
            services=services,
            stop=stop,
            say=lambda text: print(text, file=sys.stderr, flush=True),
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@app.command(cls=ReportingCommand)
@_reports_internal_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    mode: Annotated[
        Mode, typer.Option(case_sensitive=False, help="refetch: GET each alert from Opsgenie; payload: map the body.")
    ] = Mode.refetch,
    mapping: MappingOpt = None,
    region: RegionOpt = None,
    opsgenie_url: Annotated[str | None, typer.Option(help="Opsgenie API URL (env OPSGENIE_API_URL).")] = None,
    port_url: Annotated[str | None, typer.Option(help="Port API URL (env PORT_BASE_URL).")] = None,
    env_file: EnvFile = None,
    no_env_file: NoEnvFile = False,
    ca_bundle: CaBundleOpt = None,
    queue_size: Annotated[int, typer.Option(min=1, help="Alerts that may wait; beyond it 503 + Retry-After.")] = 1000,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Connections served at once; beyond it 503 + Retry-After.")
    ] = 64,
    drain_timeout: Annotated[float, typer.Option(min=0, help="Seconds to drain the queue on SIGTERM.")] = 30.0,
    log_format: LogFormatOpt = Format.text,
    quiet: QuietOpt = False,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Receive Opsgenie webhooks on POST /integration/webhook and update Port (needs OPSGENIE_WEBHOOK_SECRET)."""
    from opsgenie_export.serve import ServeConfig, serve_command

    options = Options(
        opsgenie_url=opsgenie_url,
        region=region,
        port_url=port_url,
        mapping=mapping,
        env_file=env_file,
        no_env_file=no_env_file,
        ca_bundle=ca_bundle,
    )
    config = ServeConfig(
        secret="",
        host=host,
        port=port,
        mode=mode,
        queue_size=queue_size,
        drain_timeout=drain_timeout,
        max_connections=max_connections,
        log_format=str(log_format),
        quiet=quiet,
        debug=debug,  # the serve log is plain lines (no colours, so --no-color changes nothing) or JSON
    )
    try:
        code = serve_command(options, config)
    finally:
        log_requests(None)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
