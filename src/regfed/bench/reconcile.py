"""``regfed bench reconcile``: one reconciliation of a generated federation, through the real path.

Setup (``setup_seconds``): a local federation of ``registries`` registries in a folder, each
registry's SQLite store filled from :mod:`regfed.reconciliation.bench`'s generator with its
blocks, issuances, transfers in flight and the journal entries that make its books agree
(:mod:`.reconcile_fill`, two registries at a time on two cores), with ``overlaps`` copied blocks
injected in mixed shapes; then the registry node processes are started (no oversight process:
this process is the oversight client, with the oversight certificate), at a lower CPU priority
(:data:`NODE_NICE`).

Measure (``seconds``): one :class:`regfed.oversight.reconciler.Reconciler` run over every
node's signed snapshot stream (gRPC, mutual TLS, Ed25519 trailers), the sweep, the journal
windows and ``explain``. Meanwhile the resident memory of this process and of every node
process is sampled every 50 ms from ``/proc/<pid>/status``.

Score: :func:`regfed.reconciliation.bench.score` against the injections (an injected block is
found when SERIAL_IN_TWO_PLACES findings naming it cover all its serials; a finding is a false
positive unless it is such an overlap or its class's SUPPLY_NOT_CONSERVED by exactly the units
injected into that class).

Naive (``naive_ratio``): the per-serial check :func:`regfed.reconciliation.oracle.brute_force`
on the same generated blocks (held in memory, not timed), in a child process given 60 s, at
10^4, 3*10^4, 10^5, ... blocks until it does not finish; the largest size it finished is then
reconciled by the real path too (another federation, unless it is the main size), in the same
run.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from regfed.certs.identity import Role
from regfed.gateway.transport import channel_credentials
from regfed.local import LocalFederation, create_federation
from regfed.local.federation import Federation, free_base_port
from regfed.oversight.reconciler import Reconciler, targets_of
from regfed.reconciliation.bench import _blocks, _issuances, score
from regfed.reconciliation.model import DEFAULT_SETTLEMENT_LIMIT_S

from .reconcile_fill import Shape, fill_registry, shape

Progress = Callable[[str], None]

#: How long the naive check may take at one size.
NAIVE_LIMIT_S = 60.0
#: Sizes the naive check is tried at, smallest first (then the main size, if smaller).
NAIVE_SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)
#: Address space the naive child may take (its per-serial dictionary grows with the size).
NAIVE_MEMORY_BYTES = 8 * 2**30
SAMPLE_EVERY_S = 0.05
#: The niceness the node processes run at while the bench measures (``--node-nice``). The bench
#: process is the oversight node, the one serial consumer of every stream; on one machine of two
#: cores the ten nodes, which read ahead of it, would otherwise take most of its core whenever
#: they run (the scheduler shares a core among eleven processes), although in a deployment each
#: runs on a machine of its own. A lower priority for the nodes (``--node-nice 10``) gives the
#: CPU the same work in the order a deployment would. The default, 0, shares it equally: the
#: headline figures are the ones nothing was tuned for (BENCHMARKS.md gives both).
NODE_NICE = 0
#: What a node runs with on the bench: its re-drive pass (every second by default) would
#: re-read every transfer left in flight, and there is no oversight node to poll for verdicts.
NODE_SETTINGS = {"redrive_interval": 3600.0, "verdict_poll": 0.0}
MARKER = "bench.json"


# -- memory and CPU of processes -------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples the resident set of named processes every ``every`` seconds on a thread."""

    def __init__(self, pids: dict[str, int], every: float = SAMPLE_EVERY_S) -> None:
        self.pids = pids
        self.every = every
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_total = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        total = 0
        for name, pid in self.pids.items():
            kb = _rss_kb(pid)
            total += kb
            self.peak[name] = max(self.peak[name], kb)
        self.peak_total = max(self.peak_total, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


# -- the federation --------------------------------------------------------------------------------


def _marker(s: Shape) -> dict[str, Any]:
    return {"format": "regfed-bench-reconcile/1", **asdict(s), "codes": list(s.codes)}


def fill_all(folder: Path, s: Shape, progress: Progress) -> dict[str, Any]:
    """Every registry's store, two at a time in worker processes (spawned: no state of this
    process is shared). Returns the figures of the fill."""
    began = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(2, os.cpu_count() or 1, s.registries))
    pool = context.Pool(workers)
    try:
        jobs = [(str(folder), s, r) for r in range(s.registries)]
        written = pool.starmap(fill_registry, jobs, chunksize=1)
        pool.close()
    finally:
        pool.terminate()  # at once on an error or Ctrl-C: no worker outlives the bench
        pool.join()
    seconds = time.perf_counter() - began
    blocks = sum(w["blocks"] for w in written)
    progress(f"filled {s.registries} registries: {blocks:,} blocks in {seconds:.1f} s")
    # Each block is one row in blocks and one in journal_movements.
    return {
        "blocks": blocks,
        "seconds": round(seconds, 3),
        "rows_per_s": round(2 * blocks / seconds),
    }


def prepare(folder: Path, s: Shape, progress: Progress) -> tuple[Federation, dict[str, Any]]:
    """The federation in ``folder``: created and filled, or reused when an earlier run left
    one filled with the same shape there."""
    marker = folder / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == _marker(s):
        progress(f"reusing the federation filled earlier in {folder}")
        return Federation.load(folder / "federation.json"), {"reused": True}
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} is not empty and holds no federation of this shape: give an empty or "
            "new folder (or the one an identical earlier run left)"
        )
    progress(f"creating a federation of {', '.join(s.codes)} in {folder}")
    federation = create_federation(
        folder,
        list(s.codes),
        base_port=free_base_port(s.registries + 1, 41_000),
        metrics=False,
        settings=dict(NODE_SETTINGS),
    )
    figures = fill_all(folder, s, progress)
    marker.write_text(json.dumps(_marker(s), indent=2) + "\n")
    return federation, figures


def _settle(local: LocalFederation, progress: Progress, limit_s: float = 60.0) -> None:
    """Wait until the nodes' start-up work (their first re-drive pass) is over: no node uses
    more than a few percent of a core for half a second."""
    deadline = time.monotonic() + limit_s
    pids = [p.pid for p in local.processes.values()]
    before = sum(_cpu_seconds(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(_cpu_seconds(p) for p in pids)
        if now - before < 0.03 * len(pids):
            return
        before = now
    progress("the nodes were still busy after a minute; measuring anyway")


def lower_priority(pid: int, nice: int) -> None:
    """Every thread of process ``pid`` at niceness ``nice`` (Linux sets it per thread; threads
    made later inherit their creator's)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


@contextlib.contextmanager
def running(federation: Federation, progress: Progress, nice: int = 0) -> Iterator[LocalFederation]:
    """The registry nodes of ``federation`` as processes, stopped however the block ends;
    with ``nice``, at that lower CPU priority."""
    local = LocalFederation(federation)
    try:
        progress(f"starting {len(federation.registries)} registry nodes")
        local.start(federation.registries)
        _settle(local, progress)
        if nice:
            for process in local.processes.values():
                lower_priority(process.pid, nice)
        yield local
    finally:
        local.stop()


# -- one measured run --------------------------------------------------------------------------


def measure(
    federation: Federation, local: LocalFederation, s: Shape, progress: Progress
) -> dict[str, Any]:
    """One reconciliation run over the real path, timed and sampled, then scored."""
    oversight_chain, oversight_key = federation.credential(federation.registries[0], Role.OVERSIGHT)
    credentials = channel_credentials(
        federation.ca.read_bytes(), oversight_chain.read_bytes(), oversight_key.read_bytes()
    )
    stages: dict[str, float] = {}
    last = [0.0]

    def report(stage: str, registry: str, done: int, _total: int) -> None:
        now = time.perf_counter()
        stages.setdefault(stage, now)
        if stage == "sweep" and now - last[0] >= 1.0:
            last[0] = now
            progress(f"reconciling: {done:,} blocks read")

    reconciler = Reconciler(
        credentials,
        settlement_limit_s=DEFAULT_SETTLEMENT_LIMIT_S,
        connect_timeout=30.0,
        progress=report,
    )
    targets = targets_of(federation.directory())
    run_id = f"bench-{uuid.uuid4().hex[:12]}"
    pids = {"bench": os.getpid(), **{c: p.pid for c, p in local.processes.items()}}
    nodes_cpu = {c: _cpu_seconds(p.pid) for c, p in local.processes.items()}
    cpu = time.process_time()
    with RssSampler(pids) as rss:
        began = time.perf_counter()
        outcome = reconciler.run(run_id, targets)
        seconds = time.perf_counter() - began
    ended = began + seconds
    bench_cpu = time.process_time() - cpu
    node_cpu = sum(_cpu_seconds(p.pid) - nodes_cpu[c] for c, p in local.processes.items())
    if outcome.result is None:
        raise RuntimeError(f"the run was incomplete: {outcome.missing}")
    result = outcome.result
    spec = s.spec()
    scored = score(result.discrepancies, spec.injected)
    blocks = result.counts["blocks"]
    largest = max(rss.peak, key=lambda name: rss.peak[name])
    # The reconciler reports no event when the sweep begins: reading and sweeping are one phase
    # (the streams are read as the merge consumes them), up to the first journal request.
    marks = [
        ("read_and_sweep", began),
        ("journal", stages.get("journal")),
        ("explain", stages.get("explain")),
    ]
    known = [(name, at) for name, at in marks if at is not None]
    phases = {
        name: round((known[i + 1][1] if i + 1 < len(known) else ended) - at, 3)
        for i, (name, at) in enumerate(known)
    }
    by_kind = {
        k.removeprefix("discrepancies."): v
        for k, v in result.counts.items()
        if k.startswith("discrepancies.")
    }
    return {
        "blocks": blocks,
        "seconds": round(seconds, 3),
        "blocks_per_s": round(blocks / seconds),
        "ns_per_block_log2": round(seconds * 1e9 / (blocks * math.log2(blocks)), 1),
        "peak_rss_mb": _mb(rss.peak[largest]),
        "largest_process": largest,
        "total_rss_mb": _mb(rss.peak_total),
        "rss_mb": {name: _mb(kb) for name, kb in rss.peak.items()},
        "rss_samples": rss.samples,
        "cpu_seconds": {"bench": round(bench_cpu, 2), "nodes": round(node_cpu, 2)},
        "phases": phases,
        "overlaps_injected": len(spec.injected),
        "overlaps_found": scored.found,
        "false_positives": scored.false_positives + int(result.truncated),
        "missed": [b.to_dict() for b in scored.missed[:10]],
        "unmatched": [d.to_dict() for d in scored.unexplained[:5]],
        "discrepancies": len(result.discrepancies),
        "discrepancies_by_kind": by_kind,
        "explained": len(result.explained),
        "in_transit": len(result.in_transit),
        "truncated": result.truncated,
        "counts": result.counts,
    }


# -- the naive check -----------------------------------------------------------------------------


def _naive_child(s: Shape, conn: Any) -> None:
    """In a child process: the generated blocks in memory, then the per-serial check, timed."""
    from regfed.reconciliation.oracle import brute_force  # noqa: PLC0415 - child only

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (NAIVE_MEMORY_BYTES, NAIVE_MEMORY_BYTES))
    try:
        spec = s.spec()
        blocks = [b for r in range(s.registries) for b in _blocks(spec, r, s.n_blocks)]
        issuances = [i for r in range(s.registries) for i in _issuances(spec, r, s.n_blocks)]
        conn.send(("ready", len(blocks)))
        began = time.perf_counter()
        out = brute_force(blocks, issuances)
        seconds = time.perf_counter() - began
        injected = set(spec.injected)
        found = {
            block
            for (_class, _serial, first, second, allowed) in out.pairs
            if not allowed
            for block in (first, second)
            if block in injected
        }
        conn.send(("done", seconds, len(found)))
    except MemoryError:
        conn.send(("memory", 0.0, 0))


def naive_at(s: Shape, progress: Progress, limit_s: float = NAIVE_LIMIT_S) -> dict[str, Any] | None:
    """The naive check's seconds at ``s`` (None when it did not finish within ``limit_s``)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_naive_child, args=(s, child), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(600):
            return None
        message = parent.recv()
        blocks = int(message[1])
        progress(f"naive per-serial check on {blocks:,} blocks (at most {limit_s:.0f} s)")
        if not parent.poll(limit_s):
            progress(f"naive check on {blocks:,} blocks: not done in {limit_s:.0f} s")
            return None
        kind, seconds, found = parent.recv()
        if kind != "done":
            progress(f"naive check on {blocks:,} blocks: out of memory")
            return None
        progress(f"naive check on {blocks:,} blocks: {seconds:.2f} s")
        return {"blocks": blocks, "seconds": round(seconds, 3), "overlaps_found": found}
    except EOFError:
        return None
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        parent.close()


# -- the whole benchmark -----------------------------------------------------------------------


def run_reconcile_bench(
    n_blocks: int,
    *,
    registries: int = 10,
    overlaps: int = 100,
    seed: int = 0,
    folder: Path | None = None,
    naive: bool = True,
    node_nice: int = NODE_NICE,
    progress: Progress,
) -> dict[str, Any]:
    s = shape(n_blocks, registries, overlaps, seed)
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="regfed-bench-")))
        folder = folder.resolve()
        began = time.perf_counter()
        federation, fill = prepare(folder / "federation", s, progress)
        with running(federation, progress, node_nice) as local:
            setup = time.perf_counter() - began
            progress(f"reconciling {n_blocks:,} blocks through {registries} nodes")
            figures = measure(federation, local, s, progress)
        progress(
            f"reconciled {figures['blocks']:,} blocks in {figures['seconds']:.2f} s; "
            f"{figures['overlaps_found']}/{figures['overlaps_injected']} overlaps found, "
            f"{figures['false_positives']} false positives"
        )
        out: dict[str, Any] = {
            "blocks": figures.pop("blocks"),
            "registries": registries,
            "seconds": figures.pop("seconds"),
            "blocks_per_s": figures.pop("blocks_per_s"),
            "setup_seconds": round(setup, 3),
            **figures,
            "node_nice": node_nice,
            "fill": fill,
            "shape": {
                "blocks_asked": n_blocks,
                "classes": len(s.spec().classes),
                "blocks_per_class": s.blocks_per_class,
                "transit_every": s.transit_every,
                "seed": seed,
            },
        }
        out.update(_naive(s, out, folder, naive, node_nice, progress))
        return out
    raise AssertionError("unreachable")


def _naive(
    s: Shape, main: dict[str, Any], folder: Path, naive: bool, nice: int, progress: Progress
) -> dict[str, Any]:
    if not naive:
        return {
            "naive_ratio": None,
            "naive_blocks": None,
            "naive_seconds": None,
            "ours_at_naive_seconds": None,
        }
    sizes = [n for n in NAIVE_SIZES if n < s.n_blocks] + [s.n_blocks]
    best: tuple[Shape, dict[str, Any]] | None = None
    tried = []
    for n in sizes:
        at = shape(n, s.registries, s.overlaps, s.seed)
        done = naive_at(at, progress)
        tried.append({"blocks_asked": n, "seconds": None if done is None else done["seconds"]})
        if done is None:
            break
        best = (at, done)
    if best is None:
        return {
            "naive_ratio": None,
            "naive_blocks": None,
            "naive_seconds": None,
            "ours_at_naive_seconds": None,
            "naive_tried": tried,
        }
    at, done = best
    if at.n_blocks == s.n_blocks:
        ours = main["seconds"]
    else:
        sub = folder / f"naive-{at.n_blocks}"
        if sub.exists() and not (sub / "federation" / MARKER).is_file():
            shutil.rmtree(sub)
        federation, _fill = prepare(sub / "federation", at, progress)
        with running(federation, progress, nice) as local:
            progress(f"reconciling {at.n_blocks:,} blocks (the naive check's size)")
            ours = measure(federation, local, at, progress)["seconds"]
    return {
        "naive_ratio": round(done["seconds"] / ours, 1),
        "naive_blocks": done["blocks"],
        "naive_seconds": done["seconds"],
        "ours_at_naive_seconds": ours,
        "naive_method": "per-serial (regfed.reconciliation.oracle.brute_force), in memory",
        "naive_overlaps_found": done["overlaps_found"],
        "naive_tried": tried,
    }
