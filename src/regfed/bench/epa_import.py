"""``regfed bench epa-import``: the whole of EPA's ARP file imported, its cost, and its figures
checked through the oversight node.

It imports into a temporary folder (49 registry nodes and the oversight node, all real
processes), sampling every second the memory of this process and all its descendants (the sum
of their PSS: shared pages counted once, split among the processes sharing them; RSS summed is
given too, an overcount). Then it serves the federation again, asks the oversight node for
supply and compliance and compares them with the file per state and year, and reconciles. The
targets (10 minutes, 8 GiB on a 2-core machine) are given as ratios: under 1 meets them.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regfed.epa import plan_import, read_arp
from regfed.local import Federation, LocalFederation
from regfed.local.epa_import import import_arp
from regfed.local.oversight import OversightClient

TARGET_SECONDS = 600.0
TARGET_BYTES = 8 * 1024**3


def _descendants(pid: int) -> list[int]:
    found = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            found += _descendants(child)
    return found


def _memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes, from /proc/PID/smaps_rollup; (0, 0) if it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


class TreeMemory:
    """The peak memory of this process and its descendants, sampled on a thread."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak_pss = self.peak_rss = self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _descendants(os.getpid())
            pss = rss = 0
            for pid in pids:
                p, r = _memory(pid)
                pss, rss = pss + p, rss + r
            if pss > self.peak_pss:
                self.peak_pss, self.peak_rss, self.processes = pss, rss, len(pids)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_epa_import_bench(file: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    rows = read_arp(file)
    plan = plan_import(rows)
    with tempfile.TemporaryDirectory(prefix="regfed-epa-") as tmp:
        folder = Path(tmp) / "federation"
        began = time.monotonic()
        with TreeMemory() as memory:
            report = import_arp(plan, folder, progress=progress)
        seconds = time.monotonic() - began
        progress("serving it again and asking the oversight node ...")
        federation = Federation.load(folder / "federation.json")
        local = LocalFederation(federation)
        local.start()
        try:
            with OversightClient(federation, timeout=300.0) as oversight:
                supply = oversight.query("supply", by=["issuer", "vintage"])
                compliance = oversight.query("compliance", by=["registry", "period"])
                asked = time.monotonic()
                run = oversight.reconcile()
                reconcile_seconds = time.monotonic() - asked
        finally:
            local.stop()
    issued = {(r["issuer"], r["vintage"]): r["issued"] for r in supply.rows if r["issued"]}
    epa_allocated = {(r.state, r.year): r.allocated for r in rows if r.allocated}
    surrendered = {(r["registry"], int(r["period"])): r["surrendered"] for r in compliance.rows}
    return {
        "states": len(plan.states),
        "years": f"{plan.years[0]}-{plan.years[-1]}",
        "import_seconds": round(seconds, 1),
        "time_ratio_to_10_minutes": round(seconds / TARGET_SECONDS, 3),
        "peak_pss_gib": round(memory.peak_pss / 1024**3, 2),
        "peak_rss_sum_gib": round(memory.peak_rss / 1024**3, 2),
        "memory_ratio_to_8_gib": round(memory.peak_pss / TARGET_BYTES, 3),
        "processes_at_peak": memory.processes,
        "interstate_transfers": report.transfers,
        "issued_matches_epa": issued == epa_allocated,
        "surrendered_matches_epa": surrendered == {(r.state, r.year): r.deducted for r in rows},
        "missing": sorted({*supply.missing, *compliance.missing}),
        "reconciliation": run["status"],
        "discrepancies": len((run.get("result") or {}).get("discrepancies", [])),
        "reconcile_seconds": round(reconcile_seconds, 1),
    }
