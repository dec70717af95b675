"""The scenario format: every mistake is refused before a node starts, with where and what."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from regfed.gateway.protocol.durable import CRASH_PHASES, DURABLE_EFFECTS, crash_points
from regfed.scenario import ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BASE: dict[str, Any] = {
    "registries": ["PA", "NY"],
    "accounts": {
        "alloc": {"registry": "PA", "type": "state"},
        "acme": {"registry": "PA", "type": "general", "representatives": ["alice"]},
        "plant": {"registry": "NY", "type": "compliance"},
    },
    "steps": [{"op": "transfer", "from": "acme", "to": "plant", "quantity": 5}],
}


def changed(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return data


def test_defaults_follow_the_documented_rules() -> None:
    scenario = parse_scenario(BASE)
    assert scenario.accounts["plant"].representatives == ("plant-ar",)
    assert scenario.accounts["plant"].source == "plant"  # a compliance source defaults to it
    assert scenario.accounts["alloc"].is_state


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("registries", ["pa"], "capital letters"),
        ("registries", ["PA", "PA"], "twice"),
        ("accounts.acme.registry", "NJ", "not in"),
        ("accounts.acme.type", "savings", "use one of"),
        ("accounts.acme.source", "X-1", "only a compliance account"),
        ("steps.0.from", "nobody", "no account alias 'nobody'"),
        ("steps.0.op", "teleport", "unknown op 'teleport'"),
        ("steps.0.quantity", "5", "whole number"),
        ("steps.0.expect", "maybe", "expect is one of"),
        ("steps.0.colour", "red", "unknown key 'colour'"),
        ("steps.0.serials", [[1, 5]], "either quantity or serials"),
        ("steps.0", {"op": "crash", "registry": "NY", "at": "nowhere"}, "no crash point"),
        ("steps.0", {"op": "cancel", "transfer": 0}, "index of an earlier step"),
        ("steps.0", {"op": "close", "account": "alloc"}, "state account"),
        ("steps.0", {"op": "issue", "registry": "PA"}, "missing"),
        ("accounts.alloc.type", "state:set-aside:Waste Coal", "lower case"),
        ("steps.0", {"op": "advance-clock", "registry": "PA", "seconds": -5}, "positive"),
        ("steps.0", {"op": "advance-clock", "registry": "PA", "seconds": True}, "positive"),
        ("steps.0", {"op": "advance-clock", "registry": "NJ", "seconds": 5}, "not in"),
        (
            "steps.0",
            {"op": "transfer", "from": "acme", "to": "plant", "quantity": 1}
            | {"expect": "completed", "error": "X"},
            "goes with",
        ),
        ("steps.0", {"op": "crash", "registry": "NY", "at": "x", "expect": "any"}, "unknown key"),
        ("registries", [False], "quote the code"),
        ("programs", {"code": "CAT"}, "list of program rules"),
        ("programs", [{"code": "CAT"}], "compliance_account_may_send"),
        ("registry_programs", [], "JSON object"),
        ("registry_programs", {"NY": {"code": "CAT"}}, "of NY is a list of program rules"),
        ("registry_programs", {"NY": [{"code": "CAT"}]}, "of NY: .*compliance_account_may_send"),
        ("registry_programs", {"NJ": []}, "names NJ, not among"),
        (
            "steps.0",
            {"op": "transfer", "from": "acme", "to": "plant", "quantity": 1, "error": "X"},
            "goes with",
        ),
    ],
)
def test_mistakes_are_refused_with_where_and_what(path: str, value: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(changed(path, value))


def test_crash_points_cover_every_durable_effect_and_phase() -> None:
    points = crash_points()
    assert len(points) == len(DURABLE_EFFECTS) * len(CRASH_PHASES)
    assert len({p["name"] for p in points}) == len(points)
    for point in points:
        assert str(point["name"]).startswith(f"{point['side']}.")
        assert point["side"] in {"source", "destination"}
        assert point["path"] in {"commit", "reject", "cancel", "expiry", "in-doubt"}
    assert {str(p["hook"]).split(":")[0] for p in points} == set(DURABLE_EFFECTS)


def test_a_registry_applies_its_own_rules_over_the_common_ones() -> None:
    cppr = {
        "code": "CPPR",
        "name": "CPPR, NY-issued ERCs only",
        "compliance_account_may_send": True,
        "deduction_unit_types": ["erc"],
        "basis": "rate",
        "issuers": ["NY"],
    }
    cat = {**cppr, "code": "CAT", "name": "a cap-and-trade program", "basis": "mass"}
    cat.pop("issuers")
    scenario = parse_scenario(BASE | {"programs": [cat], "registry_programs": {"NY": [cppr]}})
    assert scenario.programs_at("PA") == (cat,)
    assert scenario.programs_at("NY") == (cat, cppr)


SHIPPED = sorted([*SCENARIOS.glob("*.json"), *SCENARIOS.glob("*.yaml")])


@pytest.mark.parametrize("file", SHIPPED, ids=lambda f: f.name)
def test_shipped_scenarios_parse(file: Path) -> None:
    load_scenario(file)


def test_a_set_aside_account_and_a_clock_step_parse() -> None:
    data = changed("accounts.alloc.type", "state:set-aside:waste-coal")
    data["steps"].append({"op": "advance-clock", "registry": "PA", "seconds": 86_400.5})
    scenario = parse_scenario(data)
    assert scenario.accounts["alloc"].is_state
    assert scenario.steps[1].get("seconds") == 86_400.5


def test_yaml_and_json_files_of_the_same_scenario_are_the_same(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(BASE))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(BASE))
    assert load_scenario(tmp_path / "s.json") == load_scenario(tmp_path / "s.yaml")
    (tmp_path / "bad.yaml").write_text("steps: [unclosed")
    with pytest.raises(ScenarioError, match="not YAML"):
        load_scenario(tmp_path / "bad.yaml")


def test_the_shipped_suite_arms_every_crash_point_on_both_sides() -> None:
    """The conformance suite is the crash matrix: every point, on every side, is armed by some
    shipped scenario; the hold-expiry path of the source's void as well as the cancel path."""
    armed: dict[str, list[tuple[Path, int]]] = {}
    expiry_voids = set()
    for file in SHIPPED:
        steps = load_scenario(file).steps
        for step in steps:
            if step.op == "crash":
                armed.setdefault(step.get("at"), []).append((file, step.index))
                later = [s.op for s in steps[step.index + 1 :]]
                if str(step.get("at")).startswith("source.void") and later[:1] == ["advance-clock"]:
                    expiry_voids.add(step.get("at"))
    names = {str(p["name"]) for p in crash_points()}
    assert names - set(armed) == set(), "crash points no shipped scenario arms"
    assert {n.split(".")[0] for n in names} == {"source", "destination"}
    assert expiry_voids == {f"source.void.{phase}" for phase in CRASH_PHASES}
    # The destination's void also drops a pinned credit (in doubt, the source's hold expired),
    # not only a tombstone for a void that came first.
    in_doubt = load_scenario(SCENARIOS / "14-crash-in-doubt-path.json").steps
    assert {s.get("at") for s in in_doubt if s.op == "crash"} >= {
        f"destination.void.{phase}" for phase in CRASH_PHASES
    }
