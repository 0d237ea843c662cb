"""The seed's expected entities (shared by the mapping-engine golden tests and the end-to-end sync).

Expected entities are the seed's "mapping result" section, corrected where it contradicts its own
payloads (the payload wins):
- service: the result shows `team: []` and `icon: "OpsGenie"`, but mapping.yaml sets neither team
  nor icon, so the body has no team/icon key; `relations: {}` is kept (the body always has it).
- incident: relation `services` is ["Port-Outbound-Service", "My-Test-Service"] in the result, but
  the mapping walks `__impactedServices` in payload order: My Test Service first. `icon` is absent
  for the same reason as above.
- alert: the result's identifier has an extra trailing "1" ("…-1694867002321"; payload "…-169486700232");
  `acknowledged` is true in the result but false in the payload; createdAt/updatedAt in the result
  (2023-09-16…, 2023-09-26…) differ from the payload (2023-04-21T08:36:18.46Z, 2023-08-11T10:41:16.533Z);
  `description` is missing from the result and null here (list items carry no description);
  `team: []` and `icon` appear in the result though the mapping sets neither.
- alert: the payload's `integration` is the string "Default API", whereas the real API returns an
  object {id, name, type}; `.integration.name` on a string is a JQ error, so the verbatim payload
  yields a MappingError and no entity. With an object, the expected entity is produced.
"""

from __future__ import annotations

EXPECTED_SERVICE = {
    "identifier": "Port-Outbound-Service",
    "title": "Port Outbound Service",
    "properties": {
        "description": "For outbound communications and integrations",
        "url": "https://mytestaccount.app.opsgenie.com/service/daa0d66f-ad35-4396-b30d-70f0314c697a/status",
        "tags": ["communication", "channel"],
        "oncallTeam": "Data Science Team",
        "teamMembers": ["testuser@gmail.com", "devtester@gmail.com"],
        "oncallUsers": ["testuser@gmail.com"],
        "numOpenIncidents": 2,
    },
    "relations": {},
}

EXPECTED_INCIDENT = {
    "identifier": "4a0c5e6d-b239-4cd9-a7e8-a5f880e99473",
    "title": "My Incident",
    "properties": {
        "status": "open",
        "responders": [
            {"type": "team", "id": "63374eee-0b03-42d4-bb8c-50d1fa64827c"},
            {"type": "user", "id": "ce544b61-7b35-43ea-89ee-a8750638d3a4"},
            {"type": "user", "id": "9ea8f86a-6648-46d6-a2fc-1a6eb5f739c8"},
        ],
        "priority": "P3",
        "tags": ["hello"],
        "url": "https://mytestaccount.app.opsgenie.com/incident/detail/4a0c5e6d-b239-4cd9-a7e8-a5f880e99473",
        "createdAt": "2023-09-20T13:33:00.941Z",
        "updatedAt": "2023-09-26T17:48:54.48Z",
        "description": "descirption",
    },
    "relations": {"services": ["My-Test-Service", "Port-Outbound-Service"]},
}

EXPECTED_ALERT = {
    "identifier": "580e9625-ecc7-42b0-8836-3d3637438bc4-169486700232",
    "title": "Login Auth not working",
    "properties": {
        "status": "open",
        "acknowledged": False,
        "responders": [{"type": "user", "id": "ce544b61-7b35-43ea-89ee-a8750638d3a4"}],
        "priority": "P3",
        "sourceName": "testuser@gmail.com",
        "tags": ["auth", "login"],
        "count": 1,
        "createdBy": "testuser@gmail.com",
        "createdAt": "2023-04-21T08:36:18.46Z",
        "updatedAt": "2023-08-11T10:41:16.533Z",
        "description": None,
        "integration": "Default API",
    },
    "relations": {"relatedIncident": "4a0c5e6d-b239-4cd9-a7e8-a5f880e99473"},
}
