"""``regfed node run --config``: the node as a state's IT team runs it, from one file and the
environment."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from regfed.gateway.config import CONFIG_ENV, ConfigError, LoadedConfig, load_config

from ._output import emit_json

CONFIG_HINT = (
    "every key is in docs/operations.md (example: deploy/node.example.toml); each can also be "
    "set as REGFED_<KEY> in the environment"
)


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


def load(args: argparse.Namespace, **overrides: Any) -> LoadedConfig | None:
    """The configuration, or ``None`` after reporting why it cannot be used."""
    try:
        return load_config(config_file(args), **overrides)
    except ConfigError as error:
        report_config_error(args, error)
        return None


def report_config_error(args: argparse.Namespace, error: ConfigError) -> None:
    if getattr(args, "json", False):
        problem = {"code": "CONFIG", "key": error.key, "message": str(error), "hint": CONFIG_HINT}
        emit_json({"ok": False, "error": problem})
    else:
        print(f"error: configuration: {error}", file=sys.stderr)
        print(f"  what to do: {CONFIG_HINT}", file=sys.stderr)
