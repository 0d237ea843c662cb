"""Where every value comes from: command-line options > environment > `.env` file > defaults.

Accepted names are the ones users of Port's integration already have (docs/ocean-compatibility.md
§7) next to the plain `OPSGENIE_*` / `PORT_*` names. `Settings.sources` records which name each
value came from, and `Settings.describe()` shows them with secrets masked.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from opsgenie_export.errors import ConfigError

OPSGENIE_TOKEN_NAMES = ("OPSGENIE_API_TOKEN", "OPSGENIE_API_KEY", "OCEAN__INTEGRATION__CONFIG__API_TOKEN")
OPSGENIE_URL_NAMES = ("OPSGENIE_API_URL", "OCEAN__INTEGRATION__CONFIG__API_URL")
PORT_CLIENT_ID_NAMES = ("PORT_CLIENT_ID", "OCEAN__PORT__CLIENT_ID")
PORT_CLIENT_SECRET_NAMES = ("PORT_CLIENT_SECRET", "OCEAN__PORT__CLIENT_SECRET")
PORT_URL_NAMES = ("PORT_BASE_URL", "PORT_API_URL", "OCEAN__PORT__BASE_URL")
INITIALIZE_NAMES = ("OCEAN__INITIALIZE_PORT_RESOURCES",)
CACHE_DIR_NAMES = ("OPSGENIE_EXPORT_CACHE_DIR",)
CA_BUNDLE_NAMES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # what requests itself reads
CREDENTIALS = {  # settings key → (what, accepted names, option)
    "opsgenie_token": ("Opsgenie API key", OPSGENIE_TOKEN_NAMES, "--opsgenie-token"),
    "port_client_id": ("Port client id", PORT_CLIENT_ID_NAMES, "--port-client-id"),
    "port_client_secret": ("Port client secret", PORT_CLIENT_SECRET_NAMES, "--port-client-secret"),
    "atlassian_email": ("Atlassian account e-mail", ("ATLASSIAN_EMAIL",), ""),
    "atlassian_api_token": ("Atlassian API token", ("ATLASSIAN_API_TOKEN",), ""),
}
SOURCE_NAMES_ENV = ("OPSGENIE_EXPORT_SOURCE",)
JSM_SITE_NAMES = ("JSM_SITE_URL",)
JSM_CLOUD_ID_NAMES = ("JSM_CLOUD_ID",)
JSM_API_URL_NAMES = ("JSM_API_URL",)
JSM_ORG_ID_NAMES = ("JSM_ORG_ID",)
JSM_INCIDENT_JQL_NAMES = ("JSM_INCIDENT_JQL",)
ATLASSIAN_EMAIL_NAMES = ("ATLASSIAN_EMAIL",)
ATLASSIAN_TOKEN_NAMES = ("ATLASSIAN_API_TOKEN",)

SOURCES = ("opsgenie", "jsm")
DEFAULT_JSM_API_URL = "https://api.atlassian.com"
# Which Jira work items are incidents: JSM's ITSM incident work type, oldest first (so items
# created during the run come last). Unverified for every site: set JSM_INCIDENT_JQL to yours.
DEFAULT_INCIDENT_JQL = 'issuetype = "[System] Incident" ORDER BY created ASC'

SECRET_KEYS = ("opsgenie_token", "port_client_secret", "atlassian_api_token")  # never printed, in any form
MIN_SECRET_LENGTH = 8  # shorter values cannot be masked without masking ordinary text too
# Environment names whose values are masked in all output, whichever command runs.
SECRET_NAME_PATTERN = re.compile(r"(TOKEN|SECRET|API_KEY|PASSWORD)$")

OPSGENIE_REGIONS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
DEFAULT_PORT_URL = "https://api.getport.io"
PACKAGE_DEFAULTS = Path(__file__).parent / "defaults"

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Options:
    """What the command line said; None means 'not given'."""

    opsgenie_token: str | None = field(default=None, repr=False)
    opsgenie_url: str | None = None
    region: str | None = None
    port_client_id: str | None = None
    port_client_secret: str | None = field(default=None, repr=False)
    port_url: str | None = None
    mapping: Path | None = None
    blueprints: Path | None = None
    initialize_port_resources: bool | None = None
    env_file: Path | None = None
    no_env_file: bool = False
    ca_bundle: Path | None = None
    cache_dir: Path | None = None
    no_cache: bool = False
    source: str | None = None
    jsm_site: str | None = None
    jsm_cloud_id: str | None = None
    jsm_api_url: str | None = None
    jsm_org_id: str | None = None
    jsm_incident_jql: str | None = None


@dataclass(frozen=True)
class Settings:
    opsgenie_token: str = field(repr=False)
    opsgenie_url: str
    port_client_id: str
    port_client_secret: str = field(repr=False)
    port_url: str
    mapping_path: Path
    blueprints_dir: Path
    initialize_port_resources: bool
    ca_bundle: Path | None = None
    cache_dir: Path | None = None  # None: no cache
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # e.g. .env lines that were ignored, with their line numbers
    source: str = "opsgenie"  # where items come from: "opsgenie" or "jsm"
    jsm_site_url: str = ""
    jsm_cloud_id: str = ""  # empty: discovered from the site's /_edge/tenant_info
    jsm_api_url: str = DEFAULT_JSM_API_URL
    jsm_org_id: str = ""  # for team members (Atlassian Teams API); no discovery with Basic auth
    jsm_incident_jql: str = DEFAULT_INCIDENT_JQL
    atlassian_email: str = ""
    atlassian_api_token: str = field(default="", repr=False)

    def origin(self, key: str) -> str:
        """Where a value came from, for messages: 'OPSGENIE_API_TOKEN (environment)',
        'OCEAN__PORT__CLIENT_SECRET (.env file ./.env)', 'option --port-url' or 'default'."""
        return self.sources.get(key, "default")

    def credential_origins(self) -> tuple[str, str]:
        """(Opsgenie key, Port credentials) origins for the messages of a refused credential."""
        port = f"the client id from {self.origin('port_client_id')} and the secret from "
        return self.origin("opsgenie_token"), port + self.origin("port_client_secret")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in any output (redaction.py masks every form of each,
        the Basic-auth base64 of `e-mail:token` included)."""
        values = [self.opsgenie_token, self.port_client_secret, self.atlassian_api_token]
        return tuple(s for s in values if s)

    def describe(self) -> dict[str, str]:
        """Every setting with its source; secrets masked."""
        shown = {
            "opsgenie_token": mask(self.opsgenie_token),
            "opsgenie_url": self.opsgenie_url,
            "port_client_id": self.port_client_id,
            "port_client_secret": mask(self.port_client_secret),
            "port_url": self.port_url,
            "mapping": str(self.mapping_path),
            "blueprints": str(self.blueprints_dir),
            "initialize_port_resources": str(self.initialize_port_resources).lower(),
            "cache_dir": str(self.cache_dir) if self.cache_dir else "off",
            "source": self.source,
        }
        if self.source == "jsm":
            shown |= {
                "jsm_site_url": self.jsm_site_url,
                "jsm_cloud_id": self.jsm_cloud_id or "(discovered from the site)",
                "jsm_api_url": self.jsm_api_url,
                "jsm_org_id": self.jsm_org_id or "(not set)",
                "jsm_incident_jql": self.jsm_incident_jql,
                "atlassian_email": self.atlassian_email,
                "atlassian_api_token": mask(self.atlassian_api_token),
            }
        return {key: f"{value}  ({self.sources.get(key, 'default')})" for key, value in shown.items()}


def mask(secret: str | None) -> str:
    """A masked form that tells whether a secret is set without revealing any of it."""
    return f"****({len(secret)} chars)" if secret else "(not set)"


def load_environment(
    options: Options, environ: Mapping[str, str] | None = None, warnings: list[str] | None = None
) -> dict[str, tuple[str, str]]:
    """Name -> (value, origin) from the process environment over the `.env` file.

    The `.env` file is read without modifying os.environ; origin is 'environment' or
    '.env file PATH'. A line that is not `NAME=value` is ignored with a warning naming its line
    (appended to `warnings` when given).
    """
    values = {k: (v, "environment") for k, v in (os.environ if environ is None else environ).items()}
    if options.no_env_file:
        return values
    path = options.env_file or Path(".env")
    if options.env_file and not path.is_file():
        raise ConfigError(f"--env-file {path}: file not found; pass an existing file or --no-env-file")
    if not path.is_file():
        return values
    if warnings is not None:
        warnings.extend(_env_file_problems(path))
    logging.getLogger("dotenv.main").disabled = True  # its own warning has no file name: ours is above
    try:
        parsed = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the .env file: {exc}") from None
    from_file = {k: (v, f".env file {path}") for k, v in parsed.items() if v is not None}
    return {**from_file, **values}


def _env_file_problems(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as stream:
            bindings = list(parse_stream(stream))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the .env file: {exc}") from None
    return [
        f"{path} line {binding.original.line}: ignored, not NAME=value: {binding.original.string.strip()[:40]!r}"
        for binding in bindings
        if binding.error
    ]


def resolve(options: Options, environ: Mapping[str, str] | None = None, *, need_credentials: bool = True) -> Settings:
    """Merge options, environment, `.env` and defaults; raise ConfigError naming what to fix."""
    warnings: list[str] = []
    env = load_environment(options, environ, warnings)
    sources: dict[str, str] = {}

    def pick(key: str, option_value: str | None, names: tuple[str, ...], flag: str) -> str | None:
        if option_value is not None and flag:
            if not option_value.strip():  # `--opsgenie-token ""`: an empty CI secret, not "use the env"
                raise ConfigError(f"{flag} is empty; pass a value, or leave the option out to use {names[0]}")
            sources[key] = f"option {flag}"
            return clean_credential(key, option_value, sources[key])
        for name in names:
            value, origin = env.get(name, ("", ""))
            if value:
                sources[key] = f"{name} ({origin})"
                return clean_credential(key, value, sources[key])
        return None

    token = pick("opsgenie_token", options.opsgenie_token, OPSGENIE_TOKEN_NAMES, "--opsgenie-token")
    opsgenie_url = _opsgenie_url(options, pick, sources)
    client_id = pick("port_client_id", options.port_client_id, PORT_CLIENT_ID_NAMES, "--port-client-id")
    secret = pick("port_client_secret", options.port_client_secret, PORT_CLIENT_SECRET_NAMES, "--port-client-secret")
    port_url = pick("port_url", options.port_url, PORT_URL_NAMES, "--port-url") or DEFAULT_PORT_URL
    initialize = _initialize_flag(options, pick)
    cache_dir = _cache_dir(options, pick, env)
    source = (pick("source", options.source, SOURCE_NAMES_ENV, "--source") or "opsgenie").strip().lower()
    if source not in SOURCES:
        raise ConfigError(f"source {source!r} ({sources.get('source')}): expected one of {', '.join(SOURCES)}")
    jsm = _jsm_settings(options, pick, need_credentials) if source == "jsm" else {}

    if need_credentials:
        keys = ["opsgenie_token"] if source == "opsgenie" else ["atlassian_email", "atlassian_api_token"]
        values = {"opsgenie_token": token, "port_client_id": client_id, "port_client_secret": secret, **jsm}
        require_credentials(values, [*keys, "port_client_id", "port_client_secret"])

    mapping_path, mapping_source = _mapping_path(options)
    sources["mapping"] = mapping_source
    blueprints_dir = options.blueprints or _default_blueprints_dir()
    sources["blueprints"] = "option --blueprints" if options.blueprints else _blueprints_source(blueprints_dir)
    check_ca_bundle(options.ca_bundle, env)
    return Settings(
        opsgenie_token=token or "",
        opsgenie_url=normalise_opsgenie_url(opsgenie_url),
        port_client_id=client_id or "",
        port_client_secret=secret or "",
        port_url=normalise_port_url(port_url),
        mapping_path=mapping_path,
        blueprints_dir=blueprints_dir,
        initialize_port_resources=initialize,
        ca_bundle=options.ca_bundle,
        cache_dir=cache_dir,
        sources=sources,
        warnings=tuple(warnings),
        source=source,
        **jsm,
    )


def _jsm_settings(options: Options, pick, need_site: bool) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The JSM Operations settings. The site is always needed (incidents and users are Jira's),
    so a missing one is a configuration error before any request; the cloud id may be left out
    (it is read from the site's /_edge/tenant_info)."""
    site = pick("jsm_site_url", options.jsm_site, JSM_SITE_NAMES, "--jsm-site")
    if not site and need_site:
        raise ConfigError(
            "missing JSM site: set JSM_SITE_URL (environment or .env) or pass --jsm-site "
            "https://<your-site>.atlassian.net; --source jsm reads incidents and users from it, "
            "and the cloud id from its /_edge/tenant_info"
        )
    site = (site or "").strip()
    if site and "://" not in site:
        site = f"https://{site}"
    api_url = pick("jsm_api_url", options.jsm_api_url, JSM_API_URL_NAMES, "--jsm-api-url") or DEFAULT_JSM_API_URL
    jql = pick("jsm_incident_jql", options.jsm_incident_jql, JSM_INCIDENT_JQL_NAMES, "--jsm-incident-jql")
    cloud_id = (pick("jsm_cloud_id", options.jsm_cloud_id, JSM_CLOUD_ID_NAMES, "--jsm-cloud-id") or "").strip()
    if cloud_id and not all(c.isalnum() or c == "-" for c in cloud_id):
        raise ConfigError(f"JSM cloud id {cloud_id!r}: expected a UUID such as 0f4c8a52-6d1e-4b7a-9c3d-2e5f7a9b1c04")
    return {
        "jsm_site_url": normalise_url(site, "JSM site URL") if site else "",
        "jsm_cloud_id": cloud_id,
        "jsm_api_url": normalise_url(api_url, "JSM API URL"),
        "jsm_org_id": (pick("jsm_org_id", options.jsm_org_id, JSM_ORG_ID_NAMES, "--jsm-org-id") or "").strip(),
        "jsm_incident_jql": (jql or DEFAULT_INCIDENT_JQL).strip(),
        "atlassian_email": (pick("atlassian_email", None, ATLASSIAN_EMAIL_NAMES, "") or "").strip(),
        "atlassian_api_token": (pick("atlassian_api_token", None, ATLASSIAN_TOKEN_NAMES, "") or "").strip(),
    }


def _opsgenie_url(options: Options, pick, sources: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    if options.region:
        region = options.region.lower()
        if region not in OPSGENIE_REGIONS:
            raise ConfigError(f"--region {options.region!r}: unknown region; use 'us' or 'eu', or --opsgenie-url URL")
        if options.opsgenie_url:
            raise ConfigError("--region and --opsgenie-url both given; use one of them")
        sources["opsgenie_url"] = f"option --region {region}"
        return OPSGENIE_REGIONS[region]
    return pick("opsgenie_url", options.opsgenie_url, OPSGENIE_URL_NAMES, "--opsgenie-url") or OPSGENIE_REGIONS["us"]


def _initialize_flag(options: Options, pick) -> bool:  # type: ignore[no-untyped-def]
    if options.initialize_port_resources is not None:
        return options.initialize_port_resources
    raw = pick("initialize_port_resources", None, INITIALIZE_NAMES, "")
    if raw is None:
        return False
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"OCEAN__INITIALIZE_PORT_RESOURCES={raw!r}: expected true or false")


def _cache_dir(options: Options, pick, env: Mapping[str, tuple[str, str]]) -> Path | None:  # type: ignore[no-untyped-def]
    """--cache-dir, else OPSGENIE_EXPORT_CACHE_DIR, else $XDG_CACHE_HOME/opsgenie-export, else
    ~/.cache/opsgenie-export; None with --no-cache or when there is no home directory."""
    if options.no_cache:
        return None
    chosen = pick("cache_dir", str(options.cache_dir) if options.cache_dir else None, CACHE_DIR_NAMES, "--cache-dir")
    if chosen:
        return Path(chosen).expanduser()
    xdg = env.get("XDG_CACHE_HOME", ("", ""))[0]
    if xdg:
        return Path(xdg) / "opsgenie-export"
    try:
        return Path.home() / ".cache" / "opsgenie-export"
    except RuntimeError:  # no HOME and no passwd entry (some containers): run without a cache
        return None


def clean_credential(key: str, value: str, where: str) -> str:
    """A credential as read (option, environment, .env) with surrounding whitespace stripped — a
    secret mounted from a file usually ends in a newline. Whitespace or control characters inside
    it, or a secret too short to mask safely, is a configuration error that names where it came
    from and never echoes the value. Other settings pass through unchanged."""
    if key not in CREDENTIALS:
        return value
    cleaned = value.strip()
    what = CREDENTIALS[key][0]
    if any(char.isspace() or not char.isprintable() for char in cleaned):
        raise ConfigError(
            f"{what} from {where} holds whitespace or a control character inside it (a line break or tab "
            "pasted in?); set it to the single token only"
        )
    if key in SECRET_KEYS and len(cleaned) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{what} from {where} is {len(cleaned)} characters long; real ones are longer, and a value this "
            f"short (under {MIN_SECRET_LENGTH}) cannot be kept out of logs safely"
        )
    return cleaned


def known_secrets(*values: str | None) -> tuple[str, ...]:
    """Secrets to mask before settings are resolved (or when resolving failed): `values` and every
    credential-like variable of the environment, stripped as `clean_credential` would."""
    found = [value.strip() for value in values if value and value.strip()]
    for name, value in os.environ.items():
        if SECRET_NAME_PATTERN.search(name) and value.strip():
            found.append(value.strip())
    return tuple(dict.fromkeys(secret for secret in found if len(secret) >= 4))


def require_credentials(values: Mapping[str, str | None], keys: list[str]) -> None:
    """ConfigError listing every missing credential at once (not one per run)."""
    missing = [key for key in keys if not values.get(key)]
    if not missing:
        return
    lines = []
    for key in missing:
        what, names, flag = CREDENTIALS[key]
        option = f", or pass {flag}" if flag else ""
        lines.append(f"{what} (set {' or '.join(names)} in the environment or .env{option})")
    raise ConfigError(f"missing {len(missing)} credential(s): " + "; ".join(lines))


def check_ca_bundle(option: Path | None, env: Mapping[str, tuple[str, str]]) -> None:
    """--ca-bundle (or REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which requests reads) must be a file of
    PEM certificates: a wrong path or a file of something else is a configuration error, not a
    TLS failure retried six times."""
    if option is not None:
        path, where = option, f"--ca-bundle {option}"
    else:
        found = [(name, env[name][0]) for name in CA_BUNDLE_NAMES if env.get(name, ("", ""))[0]]
        if not found:
            return
        path, where = Path(found[0][1]), f"{found[0][0]}={found[0][1]}"
    if path.is_dir():
        return  # a c_rehash'ed directory of certificates: requests accepts it
    if not path.is_file():
        raise ConfigError(f"{where}: file not found")
    try:
        context = ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"{where}: not a bundle of PEM certificates ({reason})") from None
    if not context.get_ca_certs():
        raise ConfigError(f"{where}: holds no CA certificate (expected PEM '-----BEGIN CERTIFICATE-----' blocks)")


def _mapping_path(options: Options) -> tuple[Path, str]:
    if options.mapping:
        if not options.mapping.is_file():
            raise ConfigError(f"--mapping {options.mapping}: file not found")
        return options.mapping, "option --mapping"
    local = Path("mapping.yaml")
    if local.is_file():
        return local, "./mapping.yaml"
    return PACKAGE_DEFAULTS / "mapping.yaml", "packaged default"


def _blueprints_source(directory: Path) -> str:
    return "./blueprints" if directory == Path("blueprints") else "packaged default"


def _default_blueprints_dir() -> Path:
    local = Path("blueprints")
    return local if local.is_dir() else PACKAGE_DEFAULTS / "blueprints"


def normalise_url(url: str, what: str) -> str:
    """Strip whitespace and trailing slashes; insist on an http(s) URL with a host."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{what} {url!r} is not an http(s) URL")
    return url


def normalise_port_url(url: str) -> str:
    """Port tools disagree on whether the base URL includes `/v1`: accept both."""
    url = normalise_url(url, "Port API URL")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def normalise_opsgenie_url(url: str) -> str:
    """Like Port's: the requests add `/v1`/`/v2` themselves, so a URL copied with either (or a
    trailing `/`) is accepted instead of failing on `/v2/v1/services`."""
    url = normalise_url(url, "Opsgenie API URL")
    for suffix in ("/v1", "/v2"):
        if url.endswith(suffix):
            return url[: -len(suffix)].rstrip("/")
    return url
