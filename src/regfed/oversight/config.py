"""The oversight node's configuration, loaded like a registry node's (one TOML file and
``REGFED_<FIELD>`` variables, :func:`regfed.gateway.config.load_config` with this schema)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class OversightConfig:
    #: The oversight member's code in the directory, e.g. ``EPA``; its certificate names
    #: ``urn:regfed:oversight:<code>``.
    code: str
    listen: str
    ca: Path
    certificate: Path
    key: Path
    #: Ed25519: it will sign reconciliation results; the directory lists its public key.
    signing_key: Path
    directory: Path
    #: Where Prometheus metrics are served over plain HTTP (a bare port means loopback);
    #: None: not served.
    metrics_listen: str | None = None
    #: The log on stderr: ``text`` for people, ``json`` for one object per line.
    log_format: str = "text"
    #: Seconds a stopping node (SIGTERM) gives calls in flight before cancelling them.
    shutdown_grace: float = 10.0
    reflection: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}
