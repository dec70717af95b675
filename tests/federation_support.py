"""Helpers for end-to-end tests: a real local federation in a temp dir, checks across it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from regfed.local import Federation, LocalFederation, create_federation
from regfed.local.accounts import fund, open_account
from regfed.local.audit import audit, digest, security_codes, statuses
from regfed.local.federation import free_base_port
from regfed.node import Registry, open_existing


@contextmanager
def running_federation(
    folder: Path,
    codes: list[str],
    oversight_settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Iterator[tuple[Federation, LocalFederation]]:
    federation = create_federation(
        folder,
        codes,
        # A random start: federations of earlier test modules may still hold their ports.
        base_port=free_base_port(len(codes) + 1, random.randrange(20_000, 60_000)),
        settings={"redrive_interval": 0.2, "ask_after": 1.0, **settings},
        oversight_settings={"registry_timeout": 3.0, **(oversight_settings or {})},
    )
    local = LocalFederation(federation)
    try:
        local.start(env=env)
        yield federation, local
    finally:
        local.stop()


def registry(federation: Federation, code: str) -> Registry:
    return open_existing(federation.node_config(code).database)


__all__ = [
    "audit",
    "digest",
    "fund",
    "open_account",
    "registry",
    "running_federation",
    "security_codes",
    "statuses",
]
