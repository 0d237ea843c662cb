"""An unchanged re-run skips mapping items whose mapping result is known, and only those.

Real CLI against the emulators; what was written is read from the Port emulator, what was reused
from the run's own message and the cache file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsgenie_export.mapped_items import MappedItems
from opsgenie_export.sandbox.accounts import generate_account

from conftest import OPSGENIE_KEY, PORT_SECRET, REPO, Sandbox, default_mapping_with, run_cli, running_sandbox

ALERT_BP = "opsGenieAlert"
REUSED = "unchanged items not mapped again"


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with running_sandbox(generate_account(alerts=150, incidents=20, services=8, teams=3, seed=31)) as sandbox:
        yield sandbox


def _jq_mapping(tmp_path: Path) -> Path:
    """The default mapping with the alert title computed by jq (plain paths are cheaper to map
    than to look up, so only a mapping that runs jq keeps its items)."""
    return default_mapping_with(tmp_path / "jq-mapping.yaml", ("title: .message", "title: '.message | tostring'"))


def _sync(box: Sandbox, cache: Path, tmp_path: Path, mapping: Path | None = None) -> tuple[int, dict[str, Any], str]:
    summary = tmp_path / "summary.json"
    args = [
        "sync",
        "--mapping",
        str(mapping or _jq_mapping(tmp_path)),
        "--blueprints",
        str(REPO / "blueprints"),
        "--initialize-port-resources",
        "--cache-dir",
        str(cache),
        "--summary-json",
        str(summary),
    ]
    result = run_cli(args, box.env)
    text = result.output + summary.read_text() + "".join(p.read_text() for p in cache.iterdir())
    for secret in (OPSGENIE_KEY, PORT_SECRET):
        assert secret not in text
    return result.exit_code, json.loads(summary.read_text()), result.output


def _reused(output: str) -> int:
    for line in output.splitlines():
        if REUSED in line:
            return int(line.split(REUSED)[0].split()[-1])
    return 0


def _counts(summary: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(r for r in summary["resources"] if r["kind"] == kind)


def test_unchanged_rerun_maps_no_alert_again_and_writes_nothing(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code, _first, output = _sync(box, cache, tmp_path)
    assert code == 0, output
    assert _reused(output) == 0
    entities = json.dumps(box.port.entities, sort_keys=True, default=str)
    writes = box.port.writes()
    code, second, output = _sync(box, cache, tmp_path)
    assert code == 0, output
    assert _reused(output) == 150  # every alert; incidents and services are listed whole and mapped
    alerts = _counts(second, "alert")
    assert (alerts["fetched"], alerts["unchanged"], alerts["upserted"], alerts["entities"]) == (150, 150, 0, 150)
    assert box.port.writes() == writes
    assert json.dumps(box.port.entities, sort_keys=True, default=str) == entities
    code, _third, output = _sync(box, cache, tmp_path)  # the kept entries were carried over again
    assert code == 0 and _reused(output) == 150


def test_a_changed_alert_is_mapped_and_written(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache, tmp_path)[0] == 0
    alert = box.account.alerts[7]
    box.account.update_alert(alert["id"], message="disk full on db-01", updatedAt="2030-01-01T00:00:00Z")
    code, summary, output = _sync(box, cache, tmp_path)
    assert code == 0, output
    assert _reused(output) == 149
    assert _counts(summary, "alert")["upserted"] == 1
    assert box.port.entities[ALERT_BP][alert["id"]]["title"] == "disk full on db-01"


def test_an_entity_edited_in_port_is_written_back(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache, tmp_path)[0] == 0
    alert_id = box.account.alerts[3]["id"]
    original = box.port.entities[ALERT_BP][alert_id]["title"]
    box.port.entities[ALERT_BP][alert_id]["title"] = "edited by hand"
    code, _summary, output = _sync(box, cache, tmp_path)
    assert code == 0, output
    assert _reused(output) == 149
    assert box.port.entities[ALERT_BP][alert_id]["title"] == original


def test_an_alert_gone_upstream_is_still_deleted(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache, tmp_path)[0] == 0
    gone = box.account.alerts[11]["id"]
    box.account.remove_alert(gone)
    code, _summary, output = _sync(box, cache, tmp_path)
    assert code == 0, output
    assert _reused(output) == 149
    assert gone not in box.port.entities[ALERT_BP]
    assert len(box.port.entities[ALERT_BP]) == 149


def test_another_mapping_reuses_nothing(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache, tmp_path)[0] == 0
    mapping = default_mapping_with(tmp_path / "mapping.yaml", ("title: .message", 'title: .message + "!"'))
    code, _summary, output = _sync(box, cache, tmp_path, mapping)
    assert code == 0, output
    assert _reused(output) == 0
    assert all(e["title"].endswith("!") for e in box.port.entities[ALERT_BP].values())


def test_a_damaged_cache_is_ignored_with_a_warning(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _sync(box, cache, tmp_path)[0] == 0
    [path] = cache.glob("mapped-items-*")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "not-hex garbage", *lines[1:]]) + "\n")
    code, _, output = _sync(box, cache, tmp_path)
    assert code == 0, output
    assert "ignored damaged mapped-items cache" in output
    assert _reused(output) == 0
    code, _summary, output = _sync(box, cache, tmp_path)  # the file was rewritten whole
    assert code == 0 and _reused(output) == 150


def test_a_plain_path_mapping_keeps_nothing(box: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for _ in range(2):
        code, _, output = _sync(box, cache, tmp_path, REPO / "mapping.yaml")
        assert code == 0, output
        assert _reused(output) == 0
    assert not list(cache.glob("mapped-items-*"))


def test_a_damaged_entry_or_an_old_one_is_mapped_again(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cache = MappedItems(tmp_path / "m.txt", "ns", max_age=3600, clock=lambda: now[0])
    good, bad = cache.digest(0, {"id": "a"}), cache.digest(0, {"id": "b"})
    cache.record(good, [("bp", "a", 12345, {"rel": "x"})])
    cache.record(bad, [("bp", "b", 1, None)])
    cache.finish(complete=True)
    text = (tmp_path / "m.txt").read_text().replace(' [["bp","b",1,null]]', " [[broken")
    (tmp_path / "m.txt").write_text(text)
    again = MappedItems(tmp_path / "m.txt", "ns", max_age=3600, clock=lambda: now[0])
    again.load()
    assert again.lookup(good) == [("bp", "a", 12345, {"rel": "x"})]
    assert again.lookup(bad) is None  # damaged: mapped as usual
    now[0] += 3600  # past the age limit (spread between half and all of it)
    assert again.lookup(good) is None
    now[0] -= 7200  # the clock went back: not trusted either
    assert again.lookup(good) is None
    other = MappedItems(tmp_path / "m.txt", "another mapping", clock=lambda: now[0])
    other.load()
    assert other.lookup(good) is None


def test_a_stopped_run_keeps_the_previous_file(tmp_path: Path) -> None:
    cache = MappedItems(tmp_path / "m.txt", "ns")
    cache.record(cache.digest(0, {"id": "a"}), "filtered")
    cache.finish(complete=True)
    before = (tmp_path / "m.txt").read_text()
    partial = MappedItems(tmp_path / "m.txt", "ns")
    partial.load()
    partial.record(partial.digest(0, {"id": "z"}), "filtered")
    partial.finish(complete=False)
    assert (tmp_path / "m.txt").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.txt"]  # no temporary file left behind
