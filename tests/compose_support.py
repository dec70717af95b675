"""compose.yaml without Docker: its services' commands, environment and mounts, run on this host.

Each service gets a root folder standing for its container's filesystem: named volumes are
folders shared between the services that mount them (symlinked at the mount point), bind-mounted
files are copied in, and container paths in commands, environment values and those files are
rewritten to lie under the root. The commands themselves run unchanged through the installed
``regfed`` (the image's ENTRYPOINT).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
NODE_SERVICES = ("pa", "ny", "nj")
OVERSIGHT_SERVICE = "oversight"
REGFED = Path(sys.executable).parent / "regfed"

_VARIABLE = re.compile(r"\$(?:\$|\{(\w+)(?::?-([^}]*))?\}|(\w+))")


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's variable syntax: ``$$`` is a dollar, ``${X:-default}``, ``${X}``, ``$X``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        default = match.group(2)
        found = environ.get(name)
        return found if found else (default or "")

    return _VARIABLE.sub(one, value)


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT, from the Dockerfile."""
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            command: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
            return command
    raise AssertionError("the Dockerfile has no ENTRYPOINT")


@dataclass
class Container:
    """One service's filesystem, under ``root`` on this host."""

    name: str
    service: dict[str, Any]
    root: Path
    volumes: Path

    tops: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        mounts = self.mounts()
        # The top folders of the mount points (/var, /etc): paths under them are the
        # container's own, rewritten; anything else (a URL, a host name) is left alone.
        self.tops = {"/" + target.strip("/").split("/")[0] for _, target, _ in mounts}
        for source, target, _mode in mounts:
            where = self.path(target)
            where.parent.mkdir(parents=True, exist_ok=True)
            if source.startswith((".", "/")):
                host = (ROOT / source).resolve()
                assert host.is_file(), f"{self.name} mounts {source}, which is not a file"
                where.write_text(self.rewrite(host.read_text()))
            else:
                volume = self.volumes / source
                volume.mkdir(parents=True, exist_ok=True)
                if not where.exists():
                    where.symlink_to(volume, target_is_directory=True)

    def mounts(self) -> list[tuple[str, str, str]]:
        out = []
        for spec in self.service.get("volumes", []):
            source, target, *mode = str(spec).split(":")
            out.append((source, target, mode[0] if mode else "rw"))
        return out

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def rewrite(self, text: str) -> str:
        """Absolute container paths (under a mount's top folder) moved under the root."""
        tops = sorted(self.tops, key=len, reverse=True)
        if not tops:
            return text
        pattern = re.compile(r"(?<![\w.:/-])(" + "|".join(map(re.escape, tops)) + r")(?=/)")
        return pattern.sub(lambda m: str(self.root) + m.group(1), text)

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The service's environment, interpolated and rewritten, on a clean host environment
        (no REGFED_* variable of the caller leaks in)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("REGFED_")}
        base["PATH"] = f"{REGFED.parent}{os.pathsep}{base.get('PATH', '')}"
        declared = self.service.get("environment", {})
        assert isinstance(declared, dict), "environment is written as a mapping"
        values = {k: self.rewrite(interpolate(str(v), environ or {})) for k, v in declared.items()}
        return {**base, **values}

    def command(self, environ: Mapping[str, str] | None = None) -> list[str]:
        raw = self.service["command"]
        parts = [raw] if isinstance(raw, str) else list(raw)
        return [self.rewrite(interpolate(str(p), environ or {})) for p in parts]

    def run(
        self, argv: list[str], env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            check=False,
            env=dict(env),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def container(name: str, compose: dict[str, Any], tmp: Path) -> Container:
    return Container(name, compose["services"][name], tmp / "roots" / name, tmp / "volumes")


def run_certs_job(compose: dict[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    """The one-shot certs service, exactly as compose runs it: entrypoint + command."""
    certs = container("certs", compose, tmp)
    argv = [*certs.service["entrypoint"], *certs.command()]
    return certs.run(argv, certs.environment())


def node_argv(node: Container, action: str) -> list[str]:
    """The node (or oversight) service's command with ``run`` replaced by ``action`` (check,
    health): ``regfed node run ...`` becomes ``regfed node check ...``."""
    command = node.command()
    assert command[0] in ("node", "oversight") and command[1] == "run", command
    assert entrypoint() == ["regfed"]
    return [str(REGFED), command[0], action, *command[2:]]


def run_check(
    service: Container, env: Mapping[str, str] | None = None, config: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    """The service's ``check`` (its command with ``run`` -> ``check``), with ``env`` set on top
    of its environment (container paths rewritten) and optionally another config file: (exit
    status, the ``--json`` report, the readable output). Both forms must exit alike."""
    argv = node_argv(service, "check")
    if config is not None:
        argv[argv.index("--config") + 1] = str(config)
    changed = {k: service.rewrite(v) for k, v in (env or {}).items()}
    environment = {**service.environment(), **changed}
    as_json = service.run([*argv, "--json"], environment)
    text = service.run(argv, environment)
    assert as_json.returncode == text.returncode
    return as_json.returncode, json.loads(as_json.stdout), text.stdout + text.stderr


def problem(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The named check of a report, which must be a problem with a hint."""
    found: dict[str, Any] = next(c for c in report["checks"] if c["name"] == name)
    assert found["status"] == "problem", found
    assert found["hint"], "a problem says what to do"
    return found
