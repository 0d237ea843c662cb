"""JSM Operations and Jira items presented in the Opsgenie v2 shape of their kind.

This is the one place that knows the two shapes differ: every function takes what a JSM or Jira
endpoint returned and gives the item a mapping written for Opsgenie expects. The Opsgenie field
names are added (derived where JSM has the same fact under another name or form), and every JSM
field stays as it came (`seen`, `extraProperties`, `integrationName`, `lastOccuredAt`, …), so a
mapping can use either. JSM's own status is kept in `jsmStatus`. The README's "Reading from JSM
Operations" table lists each derived field and each Opsgenie field JSM cannot provide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Item = dict[str, Any]
UserLookup = Callable[[str], Item | None]  # accountId -> Jira user (None when unknown)

# JSM alert statuses -> Opsgenie's; acked/snoozed are open alerts with a flag set.
ALERT_STATUS = {"open": "open", "acked": "open", "snoozed": "open", "resolved": "closed", "closed": "closed"}
PRIORITY_BY_NAME = {"highest": "P1", "high": "P2", "medium": "P3", "low": "P4", "lowest": "P5"}
INCIDENT_STATUSES = ("open", "resolved", "closed")


def opsgenie_time(value: Any) -> Any:
    """Any ISO-8601 date-time (JSM's `…47.950Z`, Jira's `…47.950+0000`) → Opsgenie's form: UTC,
    `Z`, milliseconds without trailing zeros (`2024-01-27T19:34:13.99Z`, `…:13Z`). Port's
    `date-time` format refuses Jira's `+0000`. Anything else is returned unchanged."""
    if not isinstance(value, str) or not value:
        return value
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():  # +0000 → +00:00
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    millis = moment.microsecond // 1000
    out = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        out += "." + f"{millis:03d}".rstrip("0")
    return out + "Z"


def _ms(value: Any) -> int | None:
    text = opsgenie_time(value)
    if not isinstance(text, str) or not text.endswith("Z"):
        return None
    try:
        return int(datetime.fromisoformat(text[:-1] + "+00:00").timestamp() * 1000)
    except ValueError:
        return None


def _username(users: UserLookup, account_id: str) -> str | None:
    user = users(account_id) if account_id else None
    return (user or {}).get("emailAddress") or None


# -- alert --------------------------------------------------------------------------------------
def alert(raw: Item) -> Item:
    item = dict(raw)
    jsm_status = str(raw.get("status") or "")
    item["jsmStatus"] = jsm_status
    item["status"] = ALERT_STATUS.get(jsm_status, jsm_status)
    item["acknowledged"] = bool(raw.get("acknowledged")) or jsm_status == "acked"
    item["snoozed"] = bool(raw.get("snoozed")) or jsm_status == "snoozed"
    item["isSeen"] = bool(raw.get("seen"))
    item["integration"] = {"name": raw.get("integrationName"), "type": raw.get("integrationType")}
    item["details"] = dict(raw.get("extraProperties") or {})
    for name in ("createdAt", "updatedAt", "snoozedUntil", "ackTime", "closeTime"):
        if name in raw:
            item[name] = opsgenie_time(raw[name])
    if "lastOccuredAt" in raw:
        item["lastOccurredAt"] = opsgenie_time(raw["lastOccuredAt"])
    item["report"] = _report(raw)
    teams = [r.get("id") for r in raw.get("responders") or [] if isinstance(r, dict) and r.get("type") == "team"]
    item["teams"] = [{"id": team_id} for team_id in teams]
    item["ownerTeamId"] = teams[0] if teams else ""
    return item


def _report(raw: Item) -> Item:
    """Opsgenie's report holds durations since creation in ms; JSM gives the moments."""
    created = _ms(raw.get("createdAt"))
    report: Item = {}
    for name in ("ackTime", "closeTime"):
        moment = _ms(raw.get(name))
        if created is not None and moment is not None:
            report[name] = moment - created
    return report


# -- incident (a Jira work item) ------------------------------------------------------------------
def incident(issue: Item, site_url: str, services_field: str | None, responders_field: str | None) -> Item:
    fields: Item = dict(issue.get("fields") or {})
    status = fields.get("status") or {}
    status_name = str(status.get("name") or "")
    category = str((status.get("statusCategory") or {}).get("key") or "")
    key = str(issue.get("key") or "")
    priority = str((fields.get("priority") or {}).get("name") or "")
    services = fields.get(services_field) if services_field else None
    responders = fields.get(responders_field) if responders_field else None
    return {
        "id": str(issue.get("id")),
        "tinyId": key.rsplit("-", 1)[-1] if key else "",
        "key": key,
        "message": fields.get("summary") or "",
        "description": adf_text(fields.get("description")),
        "status": _incident_status(status_name, category),
        "jsmStatus": status_name,
        "tags": list(fields.get("labels") or []),
        "createdAt": opsgenie_time(fields.get("created")),
        "updatedAt": opsgenie_time(fields.get("updated")),
        "priority": PRIORITY_BY_NAME.get(priority.lower(), priority),
        "impactedServices": [str(s.get("id")) for s in services or [] if isinstance(s, dict) and s.get("id")],
        "responders": [{"type": r.get("type"), "id": r.get("id")} for r in responders or [] if isinstance(r, dict)],
        "extraProperties": {},
        "links": {"web": f"{site_url}/browse/{key}", "api": str(issue.get("self") or "")},
        "fields": fields,
    }


def _incident_status(name: str, category: str) -> str:
    lowered = name.strip().lower()
    if lowered in INCIDENT_STATUSES:
        return lowered
    return "resolved" if category == "done" else "open"


def adf_text(document: Any) -> str:
    """The plain text of an Atlassian Document Format value (paragraphs joined by newlines)."""
    if document is None:
        return ""
    if isinstance(document, str):
        return document
    paragraphs: list[str] = []

    def walk(node: Any, out: list[str]) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                out.append(str(node.get("text") or ""))
            elif node.get("type") == "hardBreak":
                out.append("\n")
            for child in node.get("content") or []:
                walk(child, out)
        elif isinstance(node, list):
            for child in node:
                walk(child, out)

    for block in document.get("content") or [] if isinstance(document, dict) else []:
        parts: list[str] = []
        walk(block, parts)
        paragraphs.append("".join(parts))
    return "\n".join(paragraphs)


# -- configuration kinds ----------------------------------------------------------------------------
def team(raw: Item, site_url: str) -> Item:
    team_id = str(raw.get("teamId") or "")
    return {
        **raw,
        "id": team_id,
        "name": raw.get("teamName") or "",
        "description": raw.get("description") or "",
        "links": {"web": f"{site_url}/jira/ops/teams/{team_id}", "api": ""},
    }


def team_details(listed: Item, member_ids: list[str], users: UserLookup) -> Item:
    members = [{"user": {"id": a, "username": _username(users, a)}, "role": "user"} for a in member_ids]
    return {**listed, "members": members}


def schedule(raw: Item, team_names: Mapping[str, str], users: UserLookup) -> Item:
    item = dict(raw)
    team_id = raw.get("teamId")
    if team_id:
        item["ownerTeam"] = {"id": team_id, "name": team_names.get(team_id, "")}
    if "rotations" in raw:
        item["rotations"] = [_rotation(r, users) for r in raw.get("rotations") or []]
    return item


def _rotation(raw: Item, users: UserLookup) -> Item:
    rotation = dict(raw)
    participants = []
    for participant in raw.get("participants") or []:
        entry = dict(participant)
        if entry.get("type") == "user":
            username = _username(users, str(entry.get("id") or ""))
            if username:
                entry["username"] = username
        participants.append(entry)
    rotation["participants"] = participants
    for name in ("startDate", "endDate"):
        if name in rotation:
            rotation[name] = opsgenie_time(rotation[name])
    return rotation


def oncall(schedule_item: Item, account_ids: list[str], users: UserLookup) -> Item:
    recipients = [_username(users, a) or a for a in account_ids]
    parent = {k: schedule_item.get(k) for k in ("id", "name", "enabled")}
    return {"_parent": parent, "onCallRecipients": recipients, "onCallUsers": list(account_ids)}


def escalation(raw: Item, owner: Item) -> Item:
    item = dict(raw)
    item["ownerTeam"] = {"id": owner.get("id"), "name": owner.get("name")}
    rules = []
    for rule in raw.get("rules") or []:
        shaped = dict(rule)
        delay = rule.get("delay")
        if isinstance(delay, int | float):
            shaped["delay"] = {"timeAmount": int(delay), "timeUnit": "minutes"}
        rules.append(shaped)
    item["rules"] = rules
    return item


def service(raw: Item, site_url: str) -> Item:
    owner = raw.get("owner") or {}
    team_id = owner.get("teamId") if isinstance(owner, dict) else None
    if not team_id:
        teams = (raw.get("responders") or {}).get("teams") or []
        team_id = teams[0] if teams else None
    return {
        **raw,
        "teamId": team_id,
        "tags": list(raw.get("tags") or []),
        "links": {"web": f"{site_url}/jira/servicedesk/service-hub/services/{raw.get('id')}", "api": ""},
    }


def user(raw: Item) -> Item:
    return {
        **raw,
        "id": raw.get("accountId"),
        "username": raw.get("emailAddress"),
        "fullName": raw.get("displayName"),
        "timeZone": raw.get("timeZone"),
        "locale": raw.get("locale"),
        "blocked": not raw.get("active", True),
    }
