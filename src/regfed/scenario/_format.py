"""The scenario file: parsed and checked before any node starts, so a typo costs nothing.

A scenario names its registries, its accounts by alias and its steps (docs/scenarios.md). Every
error names the step (0-based index and op) or the account and says what to write instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regfed.gateway.protocol.durable import crash_points
from regfed.node import ProgramCatalog, RegistryError

_CODE = re.compile(r"^[A-Z]{2,8}$")
ACCOUNT_TYPES = ("general", "compliance", "state", "state:retirement", "state:set-aside:NAME")
SET_ASIDE = "state:set-aside:"
_SET_ASIDE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
EXPECTATIONS = ("completed", "rejected", "any")
DEFAULT_PROGRAM = "RGGI"


class ScenarioError(ValueError):
    """The scenario file is not valid; the message says where and what to write instead."""


@dataclass(frozen=True)
class AccountSpec:
    alias: str
    registry: str
    type: str
    representatives: tuple[str, ...]
    source: str | None

    @property
    def is_state(self) -> bool:
        return self.type.startswith("state")


@dataclass(frozen=True)
class Step:
    index: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)

    @property
    def label(self) -> str:
        return f"step {self.index} ({self.op})"


@dataclass(frozen=True)
class Scenario:
    registries: tuple[str, ...]
    accounts: dict[str, AccountSpec]
    steps: tuple[Step, ...]
    #: Program rules every registry of the run uses beyond (or instead of) the built-in ones.
    programs: tuple[dict[str, Any], ...] = ()
    #: Rules one registry applies over ``programs`` (a state that takes fewer issuers, say).
    registry_programs: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    def programs_at(self, registry: str) -> tuple[dict[str, Any], ...]:
        """The program rules ``registry`` applies beyond the built-in ones, in order."""
        return self.programs + self.registry_programs.get(registry, ())


# op -> (required keys, optional keys)
_OPS: dict[str, tuple[set[str], set[str]]] = {
    "issue": (
        {"registry", "vintage", "quantity", "to"},
        {"program", "unit_type", "start", "expect", "error"},
    ),
    "transfer": (
        {"from", "to"},
        {"quantity", "serials", "program", "unit_type", "vintage", "as", "expect", "error", "wait"},
    ),
    "cancel": ({"transfer"}, {"as", "expect", "error"}),
    "retire": (
        {"account", "quantity"},
        {"program", "unit_type", "vintage", "as", "expect", "error"},
    ),
    "emissions": (
        {"account", "period", "tons"},
        {"program", "mwh", "standard", "expect", "error"},
    ),
    "project": (
        {"sponsor", "alias", "category"},
        {"program", "name", "location", "capacity_mw", "as", "expect", "error"},
    ),
    "project-status": ({"project", "status"}, {"expect", "error"}),
    "accredit": (
        {"registry", "verifier", "categories"},
        {"name", "person", "valid_from", "valid_to", "conflicts", "expect", "error"},
    ),
    "document": (
        {"kind", "subject", "alias", "content"},
        {
            "title",
            "as",
            "public",
            "supersedes",
            "period",
            "verifier",
            "quantity",
            "mv_report",
            "program",
            "official",
            "expect",
            "error",
        },
    ),
    "review": ({"document"}, {"decision", "reasons", "expect", "error"}),
    "provenance": ({"account", "project"}, set()),
    "deduct": ({"registry", "period"}, {"program", "expect", "error"}),
    "close": ({"account"}, {"expect", "error"}),
    "restrict": ({"account"}, {"expect", "error"}),
    "crash": ({"registry", "at"}, set()),
    "advance-clock": ({"registry", "seconds"}, set()),
    "restart": ({"registry"}, set()),
}
_POINTS = {p["name"] for p in crash_points()}


def load_scenario(path: Path) -> Scenario:
    """A ``.json`` file, or a ``.yaml``/``.yml`` file with the same structure."""
    try:
        content = path.read_text()
    except FileNotFoundError:
        raise ScenarioError(f"no scenario file {path}") from None
    if path.suffix in {".yaml", ".yml"}:
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as error:
            raise ScenarioError(f"{path} is not YAML: {error}") from None
    else:
        try:
            data = json.loads(content)
        except json.JSONDecodeError as error:
            raise ScenarioError(f"{path} is not JSON: {error}") from None
    return parse_scenario(data)


def parse_scenario(data: Any) -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a JSON object with registries, accounts and steps")
    _only(
        data, {"registries", "accounts", "steps", "programs", "registry_programs"}, "the scenario"
    )
    registries = data.get("registries")
    if not isinstance(registries, list) or not registries:
        raise ScenarioError('"registries" must list registry codes, e.g. ["PA", "NY"]')
    for code in registries:
        if isinstance(code, bool):
            raise ScenarioError(
                f"registry code {code!r}: YAML reads NO, YES, ON and OFF as true or false; "
                'quote the code ("NO")'
            )
        if not isinstance(code, str) or not _CODE.match(code):
            raise ScenarioError(f"registry code {code!r} must be 2 to 8 capital letters")
    if len(set(registries)) != len(registries):
        raise ScenarioError('"registries" names a registry twice')
    accounts = {
        alias: _account(alias, spec, registries)
        for alias, spec in _mapping(data.get("accounts", {}), '"accounts"').items()
    }
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError('"steps" must be a non-empty list of steps')
    steps = tuple(_step(i, raw, registries, accounts) for i, raw in enumerate(raw_steps))
    common = _programs(data.get("programs", []), '"programs"')
    by_registry = _mapping(data.get("registry_programs", {}), '"registry_programs"')
    own = {
        code: _programs(rules, f'"registry_programs" of {code}', common)
        for code, rules in by_registry.items()
    }
    strangers = sorted(set(own) - set(registries))
    if strangers:
        raise ScenarioError(
            f'"registry_programs" names {", ".join(map(str, strangers))}, not among "registries"'
        )
    return Scenario(tuple(registries), accounts, steps, common, own)


def _programs(
    raw: Any, where: str, before: tuple[dict[str, Any], ...] = ()
) -> tuple[dict[str, Any], ...]:
    """Program rules as ``regfed ledger --programs`` takes them, checked the same way."""
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise ScenarioError(f"{where} is a list of program rules (docs/ledger.md)")
    try:
        ProgramCatalog.default().with_overrides([*before, *raw])
    except RegistryError as error:
        raise ScenarioError(f"{where}: {error.message}") from None
    return tuple(raw)


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{what} must be a JSON object")
    return value


def _only(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _account(alias: str, spec: Any, registries: list[str]) -> AccountSpec:
    where = f"account {alias!r}"
    spec = _mapping(spec, where)
    _only(spec, {"registry", "type", "representatives", "source"}, where)
    registry = spec.get("registry")
    if registry not in registries:
        raise ScenarioError(f'{where}: registry {registry!r} is not in "registries"')
    kind = spec.get("type")
    if isinstance(kind, str) and kind.startswith(SET_ASIDE):
        if not _SET_ASIDE_NAME.match(kind.removeprefix(SET_ASIDE)):
            raise ScenarioError(
                f"{where}: a set-aside is named in lower case letters, digits and dashes, "
                'e.g. "state:set-aside:waste-coal"'
            )
    elif kind not in ACCOUNT_TYPES:
        raise ScenarioError(f"{where}: type {kind!r}; use one of {', '.join(ACCOUNT_TYPES)}")
    reps = spec.get("representatives", [f"{alias}-ar"])
    if not isinstance(reps, list) or not all(isinstance(r, str) and r for r in reps):
        raise ScenarioError(f"{where}: representatives must be a list of names")
    if str(kind).startswith("state") and "representatives" in spec:
        raise ScenarioError(f"{where}: a state account is run by the registry administrator")
    source = spec.get("source")
    if source is not None and kind != "compliance":
        raise ScenarioError(f"{where}: only a compliance account has a source")
    if kind == "compliance" and source is None:
        source = alias
    return AccountSpec(alias, registry, kind, tuple(reps), source)


def _step(index: int, raw: Any, registries: list[str], accounts: dict[str, AccountSpec]) -> Step:
    if not isinstance(raw, dict) or not isinstance(raw.get("op"), str):
        raise ScenarioError(f'step {index}: a step is an object with an "op"')
    op = raw["op"]
    if op not in _OPS:
        raise ScenarioError(f"step {index}: unknown op {op!r}; use one of {', '.join(_OPS)}")
    args = {k: v for k, v in raw.items() if k != "op"}
    step = Step(index, op, args)
    required, optional = _OPS[op]
    _only(args, required | optional, step.label)
    missing = sorted(required - set(args))
    if missing:
        raise ScenarioError(f"{step.label}: missing {', '.join(missing)}")
    for key in ("from", "to", "account", "sponsor"):
        if key in args and args[key] not in accounts:
            raise ScenarioError(f'{step.label}: no account alias {args[key]!r} under "accounts"')
    if "registry" in args and args["registry"] not in registries:
        raise ScenarioError(f'{step.label}: registry {args["registry"]!r} is not in "registries"')
    for key in ("quantity", "vintage", "tons", "start"):
        if key in args and (not isinstance(args[key], int) or isinstance(args[key], bool)):
            raise ScenarioError(f"{step.label}: {key} must be a whole number")
    if op == "advance-clock" and not (
        isinstance(args["seconds"], int | float)
        and not isinstance(args["seconds"], bool)
        and 0 < args["seconds"] <= 10 * 365 * 86_400
    ):
        raise ScenarioError(f"{step.label}: seconds is a positive number (at most ten years)")
    if "expect" in args and args["expect"] not in EXPECTATIONS:
        raise ScenarioError(f"{step.label}: expect is one of {', '.join(EXPECTATIONS)}")
    if "error" in args and args.get("expect") not in {"rejected", "any"}:
        raise ScenarioError(
            f'{step.label}: "error" goes with "expect": "rejected" (or "any"): '
            "it is the code a refusal must carry"
        )
    if op == "transfer":
        _transfer(step, args)
    if op == "cancel" and not (isinstance(args["transfer"], int) and 0 <= args["transfer"] < index):
        raise ScenarioError(f'{step.label}: "transfer" is the index of an earlier step')
    if op == "crash" and args["at"] not in _POINTS:
        raise ScenarioError(
            f"{step.label}: no crash point {args['at']!r}; "
            "`regfed scenario crash-points` lists them"
        )
    if op in {"close", "restrict"} and accounts[args["account"]].is_state:
        raise ScenarioError(f"{step.label}: a state account cannot be {op}d")
    return step


def _transfer(step: Step, args: dict[str, Any]) -> None:
    if ("quantity" in args) == ("serials" in args):
        raise ScenarioError(f"{step.label}: give either quantity or serials")
    serials = args.get("serials")
    if serials is not None and not (
        isinstance(serials, list)
        and serials
        and all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r)
            for r in serials
        )
    ):
        raise ScenarioError(f"{step.label}: serials is a list of [start, end] pairs")
    if "wait" in args and not isinstance(args["wait"], bool):
        raise ScenarioError(f"{step.label}: wait is true or false")
