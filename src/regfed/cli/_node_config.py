"""``regfed node check`` and ``regfed node health``, and the ``--config`` option they share with
``regfed node run``: the node as a state's IT team runs it, from one file and the environment.
``regfed oversight check/health`` are the same commands over the oversight node's configuration
(:data:`OVERSIGHT`)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from regfed.gateway.config import CONFIG_ENV, ConfigError, LoadedConfig, load_config
from regfed.gateway.daemon import NodeConfig
from regfed.gateway.preflight import Preflight
from regfed.gateway.probe import check_health
from regfed.oversight.config import OversightConfig

from ._output import EXIT_FAILED, emit_json, table

CONFIG_HINT = (
    "every key is in docs/operations.md (example: deploy/node.example.toml); each can also be "
    "set as REGFED_<KEY> in the environment"
)


@dataclass(frozen=True)
class Kind:
    """Which node a command configures: its schema, its command's name, its code's key."""

    schema: type[NodeConfig] | type[OversightConfig]
    command: str  # "node" or "oversight"
    code_key: str  # "registry" or "code"
    example: str

    def code(self, config: NodeConfig | OversightConfig) -> str:
        return str(getattr(config, self.code_key))


NODE = Kind(NodeConfig, "node", "registry", "deploy/node.example.toml")
OVERSIGHT = Kind(OversightConfig, "oversight", "code", "deploy/compose/oversight.toml")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"the node's TOML file (default: ${CONFIG_ENV}); REGFED_<KEY> variables override it",
    )


def config_file(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    named = os.environ.get(CONFIG_ENV)
    return Path(named) if named else None


def register(sub: Any, kind: Kind = NODE) -> None:
    p = sub.add_parser(
        "check", help="check a node's configuration, certificates, keys and directory; no start"
    )
    add_config_option(p)
    if kind is NODE:
        p.add_argument(
            "--connect", action="store_true", help="also connect to the database (off by default)"
        )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=partial(_check, kind=kind))

    p = sub.add_parser(
        "health", help="ask a running node's gRPC health service (exit 0 only when SERVING)"
    )
    add_config_option(p)
    p.add_argument("--address", help="HOST:PORT to ask (default: the listen address, via loopback)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=partial(_health, kind=kind))


def load(args: argparse.Namespace, **overrides: Any) -> LoadedConfig[NodeConfig] | None:
    """The configuration, or ``None`` after reporting why it cannot be used."""
    try:
        return load_config(config_file(args), **overrides)
    except ConfigError as error:
        report_config_error(args, error)
        return None


def load_oversight(
    args: argparse.Namespace, **overrides: Any
) -> LoadedConfig[OversightConfig] | None:
    """The oversight node's configuration, or ``None`` after reporting why it cannot be used."""
    try:
        return load_config(config_file(args), schema=OversightConfig, **overrides)
    except ConfigError as error:
        report_config_error(args, error, OVERSIGHT)
        return None


def _load(
    kind: Kind, args: argparse.Namespace
) -> LoadedConfig[NodeConfig] | LoadedConfig[OversightConfig] | None:
    return load_oversight(args) if kind is OVERSIGHT else load(args)


def report_config_error(args: argparse.Namespace, error: ConfigError, kind: Kind = NODE) -> None:
    hint = CONFIG_HINT.replace("deploy/node.example.toml", kind.example)
    if getattr(args, "json", False):
        problem = {"code": "CONFIG", "key": error.key, "message": str(error), "hint": hint}
        emit_json({"ok": False, "error": problem})
    else:
        print(f"error: configuration: {error}", file=sys.stderr)
        print(f"  what to do: {hint}", file=sys.stderr)


def _check(args: argparse.Namespace, kind: Kind) -> int:
    loaded = _load(kind, args)
    if loaded is None:
        return EXIT_FAILED
    preflight = Preflight(loaded.config, connect=getattr(args, "connect", False))
    checks = preflight.run()
    code = kind.code(loaded.config)
    if args.json:
        emit_json(
            {
                "ok": preflight.ok,
                kind.code_key: code,
                "config": str(loaded.file) if loaded.file else None,
                "checks": [c.to_dict() for c in checks],
                "settings": loaded.config.to_dict(),
                "sources": loaded.sources,
            }
        )
    else:
        rows = [{"check": c.name, "result": c.status, "detail": c.detail} for c in checks]
        print(f"{kind.command} {code} ({loaded.file or 'environment only'})")
        print(table(rows, ["check", "result", "detail"]))
        problems = [c for c in checks if c.status == "problem"]
        for c in problems:
            print(f"  what to do ({c.name}): {c.hint}", file=sys.stderr)
        print("all checks passed" if preflight.ok else f"{len(problems)} problem(s)")
    return 0 if preflight.ok else EXIT_FAILED


def _health(args: argparse.Namespace, kind: Kind) -> int:
    loaded = _load(kind, args)
    if loaded is None:
        return EXIT_FAILED
    code = kind.code(loaded.config)
    try:
        report = check_health(loaded.config, args.address, args.timeout)
    except (OSError, ValueError) as error:
        # A credential file missing or unreadable: the probe cannot even present itself.
        message = f"cannot probe {code}: {error}"
        hint = (
            f"run `regfed {kind.command} check` with the same configuration: it names what to fix"
        )
        if args.json:
            emit_json({"ok": False, "error": {"code": "CONFIG", "message": message, "hint": hint}})
        else:
            print(f"error: {message}", file=sys.stderr)
            print(f"  what to do: {hint}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        emit_json(
            {
                "ok": report.serving,
                kind.code_key: code,
                "address": report.address,
                "status": report.status,
                "detail": report.detail,
            }
        )
    else:
        line = f"{code} at {report.address}: {report.status}"
        print(line + (f" ({report.detail})" if report.detail else ""))
        if report.status == "UNREACHABLE":
            print(
                f"  what to do: is the node running and listening there? `regfed {kind.command} "
                "check` checks its certificates",
                file=sys.stderr,
            )
    return 0 if report.serving else EXIT_FAILED
