"""``federation.json``: where a local federation's nodes listen, and which credential each CLI
role uses. The signed membership directory is a separate file; this one is only a map.

Paths inside the file are relative to the file's folder, so the folder can move.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regfed.certs.directory import Directory
from regfed.certs.identity import Role
from regfed.certs.local import BASE_PORT, LOCAL_ADMINISTRATOR, LOCAL_TRADER, init_federation
from regfed.gateway.daemon import NodeConfig, load_directory
from regfed.oversight.config import OversightConfig

FEDERATION_ENV = "REGFED_FEDERATION"
FORMAT = "regfed-federation/1"
ROLE_FOLDERS = {Role.ADMINISTRATOR: "administrators", Role.TRADER: "traders"}


@dataclass(frozen=True)
class Federation:
    file: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, file: Path | str | None = None) -> Federation:
        path = Path(file or os.environ.get(FEDERATION_ENV, ""))
        if not str(path) or not path.is_file():
            raise FileNotFoundError(
                f"no federation file at {path or '(none given)'}: pass --federation FILE or set "
                f"{FEDERATION_ENV}; `regfed up DIR` writes DIR/federation.json"
            )
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file")
        return cls(path, data)

    @property
    def folder(self) -> Path:
        return self.file.parent

    def path(self, relative: str) -> Path:
        return self.folder / relative

    @property
    def registries(self) -> list[str]:
        return list(self.data["nodes"])

    @property
    def ca(self) -> Path:
        return self.path(self.data["ca"])

    @property
    def certs(self) -> Path:
        return self.path(self.data["certs"])

    def directory(self) -> Directory:
        return load_directory(self.node_config(self.registries[0]))

    def endpoint(self, code: str) -> str:
        return str(self.data["nodes"][self._code(code)]["endpoint"])

    def metrics(self, code: str) -> str | None:
        """Where the node serves its Prometheus metrics (loopback host:port), if it does."""
        listen = self.data["nodes"][self._code(code)].get("metrics")
        return None if listen is None else str(listen)

    def _code(self, code: str) -> str:
        code = code.upper()
        if code not in self.data["nodes"]:
            raise ValueError(
                f"registry {code} is not in {self.file}; it has {', '.join(self.registries)}"
            )
        return code

    def node_config(self, code: str, **overrides: Any) -> NodeConfig:
        code = self._code(code)
        node = self.data["nodes"][code]
        # A node's own metrics port, unless the settings or the caller say otherwise; a node's
        # own settings (its program rules, say) over the federation's.
        settings = {
            "metrics_listen": node.get("metrics"),
            **self.data.get("settings", {}),
            **node.get("settings", {}),
            **overrides,
        }
        return NodeConfig(
            registry=code,
            database=_database(self.folder, node["database"]),
            listen=node["endpoint"],
            ca=self.ca,
            certificate=self.certs / code / "tls.pem",
            key=self.certs / code / "tls.key",
            signing_key=self.certs / code / "signing.key",
            directory=self.path(self.data["directory"]),
            crls=(self.certs / code / "intermediate" / "crl.pem",),
            **settings,
        )

    @property
    def oversight(self) -> str | None:
        """The oversight node's code (it runs as a process of the local federation too)."""
        code = self.data.get("oversight")
        return None if code is None else str(code)

    def oversight_config(self, **overrides: Any) -> OversightConfig:
        """The oversight node's settings: its endpoint from the directory, its run table in
        ``<folder>/<CODE>/oversight.db``, and ``oversight_settings`` from the file."""
        code = self.oversight
        if code is None:
            raise ValueError(f"{self.file} names no oversight node")
        member = self.directory().member(code)
        if member is None:
            raise ValueError(f"the directory of {self.file} does not list {code}")
        settings = {
            "database": f"sqlite:///{self.folder / code / 'oversight.db'}",
            "log_format": self.data.get("settings", {}).get("log_format", "text"),
            **self.data.get("oversight_settings", {}),
            **overrides,
        }
        return OversightConfig(
            code=code,
            listen=member.endpoint,
            ca=self.ca,
            certificate=self.certs / code / "tls.pem",
            key=self.certs / code / "tls.key",
            signing_key=self.certs / code / "signing.key",
            directory=self.path(self.data["directory"]),
            **settings,
        )

    def credential(self, code: str, role: Role, person: str | None = None) -> tuple[Path, Path]:
        """(certificate chain, private key) a CLI user presents at ``code``'s client API."""
        code = self._code(code)
        if role is Role.REGISTRY:
            return self.certs / code / "tls.pem", self.certs / code / "tls.key"
        if role is Role.OVERSIGHT:
            oversight = str(self.data["oversight"])
            return self.certs / oversight / "tls.pem", self.certs / oversight / "tls.key"
        name = person or (LOCAL_ADMINISTRATOR if role is Role.ADMINISTRATOR else LOCAL_TRADER)
        folder = self.certs / code / ROLE_FOLDERS[role] / name
        if not (folder / "chain.pem").is_file():
            raise FileNotFoundError(
                f"no {role.value} credential for {name} at {code} ({folder}); issue one with "
                f"`regfed certs {'trader' if role is Role.TRADER else 'admin'} issue`"
            )
        return folder / "chain.pem", folder / "tls.key"


def free_base_port(count: int, start: int = BASE_PORT) -> int:
    """The first port from ``start`` up with ``count`` free loopback ports in a row."""
    for base in range(start, 65_000 - count, count + 1):
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise OSError(f"no {count} free loopback ports from {start}")


def _database(folder: Path, database: str) -> str:
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        return f"sqlite:///{folder / database.removeprefix('sqlite:///')}"
    return database


def create_federation(
    folder: Path,
    registries: list[str],
    *,
    oversight: str = "EPA",
    base_port: int = BASE_PORT,
    databases: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    node_settings: dict[str, dict[str, Any]] | None = None,
    metrics: bool = True,
    oversight_settings: dict[str, Any] | None = None,
) -> Federation:
    """Credentials on first use, then ``federation.json``; an existing federation is reused.

    With ``metrics``, each node gets a free loopback port for its Prometheus metrics, after
    the block of gRPC ports, recorded as its ``metrics`` so that tools can find it.
    ``node_settings`` (by registry) override ``settings`` at that node only."""
    file = folder / "federation.json"
    if file.is_file():
        federation = Federation.load(file)
        missing = sorted(set(registries) - set(federation.registries))
        if missing:
            raise ValueError(
                f"{folder} holds a federation of {', '.join(federation.registries)}; "
                f"{', '.join(missing)} cannot join it this way: use another folder"
            )
        return federation
    folder.mkdir(parents=True, exist_ok=True)
    certs = folder / "certs"
    summary = init_federation(certs, registries, oversight, base_port)
    endpoints = {m["code"]: m["endpoint"] for m in summary["members"]}
    extra: dict[str, dict[str, str]] = {code: {} for code in registries}
    own = node_settings or {}
    if metrics:
        first = free_base_port(len(registries), base_port + len(summary["members"]))
        for offset, code in enumerate(registries):
            extra[code]["metrics"] = f"127.0.0.1:{first + offset}"
    data = {
        "format": FORMAT,
        "ca": "certs/ca.pem",
        "certs": "certs",
        "directory": "certs/directory.json",
        "oversight": oversight,
        "settings": settings or {},
        # A local federation reconciles on demand (`regfed reconcile`); a nightly run would
        # start at every `regfed up` after 02:00 UTC. Set reconcile_nightly here to have one.
        "oversight_settings": {"reconcile_nightly": False, **(oversight_settings or {})},
        "nodes": {
            code: {
                "endpoint": endpoints[code],
                "database": (databases or {}).get(code, f"sqlite:///{code}/registry.db"),
                **extra[code],
                **({"settings": own[code]} if code in own else {}),
            }
            for code in registries
        },
    }
    for code in [*registries, oversight]:
        (folder / code).mkdir(exist_ok=True)
    file.write_text(json.dumps(data, indent=2) + "\n")
    return Federation(file, data)
