"""Real node processes for a local federation: start, wait until ready, kill -9, restart, stop.

Children stay in the caller's process group, so Ctrl-C at a terminal reaches all of them; each
stops cleanly on SIGINT or SIGTERM. Each node's log goes to ``<folder>/<CODE>/node.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .federation import Federation

READY_TIMEOUT = 60.0
READY_PER_NODE = 2.0


class NodeFailed(RuntimeError):
    pass


@dataclass
class LocalFederation:
    federation: Federation
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def start(self, codes: list[str] | None = None, env: Mapping[str, str] | None = None) -> None:
        """Start ``codes`` (default: every registry, then the oversight node)."""
        if codes is None:
            oversight = self.federation.oversight
            codes = [*self.federation.registries, *([oversight] if oversight else [])]
        # Every process starts at once; on a small machine dozens of them share its cores, so
        # the wait grows with how many there are (49 states take about a minute on 2 cores).
        deadline = time.monotonic() + READY_TIMEOUT + READY_PER_NODE * len(codes)
        for code in codes:
            self._spawn(code, env)
        for code in codes:
            self._wait_ready(code, deadline)

    def _spawn(self, code: str, env: Mapping[str, str] | None) -> None:
        if code in self.processes and self.processes[code].poll() is None:
            raise NodeFailed(f"node {code} is already running (pid {self.processes[code].pid})")
        log_path = self.federation.folder / code / "node.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.logs[code] = log_path.open("ab")
        command = [sys.executable, "-m", "regfed.cli"]
        if code == self.federation.oversight:
            command += ["oversight", "run", "--federation", str(self.federation.file)]
        else:
            command += ["node", "run", "--federation", str(self.federation.file)]
            command += ["--registry", code]
        self.processes[code] = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self.logs[code],
            env={**os.environ, **(env or {})},
        )

    def _wait_ready(self, code: str, deadline: float) -> None:
        process = self.processes[code]
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "ready":
                return
        process.kill()
        raise NodeFailed(
            f"node {code} did not start (exit {process.poll()}); see "
            f"{self.federation.folder / code / 'node.log'}"
        )

    def kill(self, code: str) -> None:
        """SIGKILL: nothing flushed, nothing cleaned up."""
        process = self.processes[code]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        self._release(code)

    def _release(self, code: str) -> None:
        process = self.processes[code]
        if process.stdout is not None and not process.stdout.closed:
            process.stdout.close()
        log = self.logs.get(code)
        if log is not None and not log.closed:
            log.close()

    def wait_exit(self, code: str, timeout: float) -> int | None:
        try:
            status = self.processes[code].wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._release(code)
        return status

    def restart(self, code: str, env: Mapping[str, str] | None = None) -> None:
        self.kill(code)
        self.start([code], env)

    def alive(self, code: str) -> bool:
        return self.processes[code].poll() is None

    def stop(self, timeout: float = 15.0) -> dict[str, int | None]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for code, process in self.processes.items():
            try:
                codes[code] = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[code] = process.wait()
            self._release(code)
        return codes

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def node_log(federation: Federation, code: str) -> Path:
    return federation.folder / code / "node.log"
