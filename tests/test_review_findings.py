"""Findings of the independent review, each reproduced through the CLI against the emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from opsgenie_export.sandbox.accounts import generate_account

from conftest import REPO, Sandbox, run_cli, running_sandbox

OCEAN = REPO / "examples" / "ocean"


def _ocean_mapping_with_schedule_identifier(path: Path, identifier: str) -> Path:
    """examples/ocean/mapping.yaml whose schedule resource (itemsToParse: .rotations) keys on `identifier`."""
    mapping = yaml.safe_load((OCEAN / "mapping.yaml").read_text())
    (schedule,) = [resource for resource in mapping["resources"] if resource["kind"] == "schedule"]
    schedule["port"]["entity"]["mappings"]["identifier"] = identifier
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


@pytest.fixture
def small_sandbox() -> Iterator[Sandbox]:
    with running_sandbox(generate_account(alerts=20, incidents=4, services=5, teams=4, seed=2024)) as sandbox:
        yield sandbox


def test_itemsToParse_rows_merged_into_one_identifier_are_a_warning(small_sandbox: Sandbox, tmp_path: Path) -> None:
    """Rows of one item (itemsToParse) that map to one identifier are merged as Port would merge
    them, and that is said (a warning, exit 1 with --strict), not done silently."""
    schedules = small_sandbox.account.schedules
    rows = sum(len(schedule.get("rotations") or []) for schedule in schedules)
    multi = [s["id"] for s in schedules if len(s.get("rotations") or []) > 1]
    assert multi, "the seed account needs a schedule with several rotations"
    mapping = _ocean_mapping_with_schedule_identifier(tmp_path / "mapping.yaml", ".id")
    summary = tmp_path / "summary.json"
    args = ["sync", "--mapping", str(mapping), "--blueprints", str(OCEAN / "blueprints")]
    args += ["--initialize-port-resources", "--summary-json", str(summary)]

    result = run_cli(args, small_sandbox.env)

    report = json.loads(summary.read_text())
    (stats,) = [resource for resource in report["resources"] if resource["kind"] == "schedule"]
    assert result.exit_code == 0, result.output
    entities = len([s for s in schedules if s.get("rotations")])
    assert len(small_sandbox.port.entities["opsGenieSchedule"]) == entities < rows
    assert stats["warnings"], stats
    assert any(identifier in stats["warnings"][0] for identifier in multi), stats["warnings"]
    assert "warning:" in result.stderr and "merged" in result.stderr

    strict = run_cli([*args, "--strict"], small_sandbox.env)
    assert strict.exit_code == 1, strict.output


@pytest.mark.parametrize("columns", ["40", "80"])
def test_summary_tables_keep_kind_and_blueprint_names_at_any_width(
    seed_sandbox: Sandbox, tmp_path: Path, columns: str
) -> None:
    """However narrow COLUMNS is, no row of the tables loses its name (a row of bare numbers
    cannot be read); at 80 every line fits."""
    result = run_cli(
        ["sync", "--initialize-port-resources", "--no-delete"],
        {**seed_sandbox.env, "COLUMNS": columns},
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    table = lines[lines.index("Opsgenie → Port") :]
    for kind in ("service", "incident", "alert"):
        assert any(line.split()[:2] == [str(["service", "incident", "alert"].index(kind)), kind] for line in table), (
            result.stderr
        )
    blueprints = lines[lines.index("Port blueprints") :]
    for blueprint in ("opsGenieService", "opsGenieIncident", "opsGenieAlert"):
        assert any(line.startswith(blueprint + " ") for line in blueprints), result.stderr
    assert any("off (--no-delete)" in line for line in blueprints), result.stderr
    if columns == "80":
        assert all(len(line) <= 80 for line in table[: table.index("Port blueprints")]), result.stderr


@pytest.mark.parametrize(
    ("text", "said"), [("- a\n", "is a list;"), ("just text\n", "is a string;"), ("42\n", "is a number;")]
)
def test_a_mapping_that_is_not_an_object_is_named_once(tmp_path: Path, text: str, said: str) -> None:
    """'the mapping file is a a list' read like a typo in the tool."""
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(text)
    result = run_cli(["validate", "--mapping", str(mapping)])
    assert result.exit_code == 2, result.output
    assert f"the mapping file {said} expected an object with a 'resources' list" in result.output
    assert "a a " not in result.output
