"""``regfed bench transfers``: settled interstate transfers per second on a local federation.

Three node processes on SQLite (``synchronous=FULL``); ``traders`` client threads each propose
transfers from PA to NY and NJ and wait for settlement, for ``duration_s``. Latency is proposal
to settlement as the trader sees it. ``floor_ratio`` divides the node processes' CPU seconds per
settled transfer by the CPU seconds of the work a transfer cannot avoid, measured here in a tight
loop: its four signatures, four verifications and five durable commits.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.local import LocalFederation, RegistryClient, create_federation
from regfed.local.accounts import fund, open_account
from regfed.local.audit import audit
from regfed.local.federation import free_base_port

SIGNATURES = 4
VERIFICATIONS = 4
COMMITS = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def floor_seconds(folder: Path, rounds: int = 300) -> float:
    """CPU seconds of one transfer's unavoidable work, measured in a tight loop."""
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    payload = os.urandom(600)
    db = sqlite3.connect(folder / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    start = time.process_time()
    for _ in range(rounds):
        for _ in range(SIGNATURES):
            signature = key.sign(payload)
        for _ in range(VERIFICATIONS):
            public.verify(signature, payload)
        for _ in range(COMMITS):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (body) VALUES (?)", (payload,))
            db.execute("COMMIT")
    db.close()
    return (time.process_time() - start) / rounds


def run_transfer_bench(
    duration_s: float, traders: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="regfed-bench-") as tmp:
        folder = Path(tmp)
        federation = create_federation(
            folder / "fed", ["PA", "NY", "NJ"], base_port=free_base_port(4, 40_000)
        )
        local = LocalFederation(federation)
        progress("starting PA, NY, NJ")
        local.start()
        try:
            sources = [open_account(federation, "PA", "trader1") for _ in range(traders)]
            for account in sources:
                fund(federation, "PA", account, 10_000_000)
            targets = [open_account(federation, code, "trader1") for code in ("NY", "NJ")]
            latencies: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()
            stop_at = time.monotonic() + duration_s

            def trade(index: int) -> None:
                with RegistryClient(federation, "PA") as client:
                    n = 0
                    while time.monotonic() < stop_at:
                        began = time.monotonic()
                        t = client.propose(sources[index], targets[n % 2], quantity=1, wait_s=60)
                        n += 1
                        with lock:
                            if t["status"] == "completed" and t["settled"]:
                                latencies.append(time.monotonic() - began)
                            else:
                                failures.append(t["status"])

            gc.freeze()  # the harness's own full collections would stall every trader thread
            cpu_before = {c: _cpu_seconds(p.pid) for c, p in local.processes.items()}
            progress(f"{traders} traders for {duration_s:.0f} s")
            began = time.monotonic()
            threads = [threading.Thread(target=trade, args=(i,)) for i in range(traders)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.monotonic() - began
            cpu = sum(_cpu_seconds(p.pid) - cpu_before[c] for c, p in local.processes.items())
            problems = audit(federation)
        finally:
            local.stop()
        progress("measuring the floor (signatures, verifications, durable commits)")
        floor = floor_seconds(folder)
    settled = len(latencies)
    ordered = sorted(latencies)
    per_transfer = cpu / settled if settled else float("inf")
    return {
        "interstate_transfers_per_s": round(settled / elapsed, 1),
        "settled": settled,
        "not_completed": len(failures),
        "duration_s": round(elapsed, 1),
        "traders": traders,
        "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1) if ordered else None,
        "node_cpu_s_per_transfer": round(per_transfer, 5),
        "floor_cpu_s_per_transfer": round(floor, 5),
        "floor_ratio": round(per_transfer / floor, 1) if floor else None,
        "audit_problems": problems,
    }
