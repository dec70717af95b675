"""``regfed bench ledger``: the intra-registry transfer rate, and what a quantity costs.

Each engine gets a fresh registry opened by :func:`open_registry`, so with the production
settings: SQLite in a temporary directory, PostgreSQL in a throwaway database created on the
given server and dropped afterwards, even on failure. All state is made by the ledger's public
operations, each its own transaction, and ``verify()`` checks the whole of it at the end.

* ``transfers_per_s``: ``transfers`` transfers of 1-1000 units between random accounts among
  ``TRADERS`` funded general accounts, one operation each, over their wall time.
* ``quantity_cost_ratio``: a general account holds ``blocks`` blocks; 1 unit and 10^9 units are
  transferred out of it in pairs (alternating which goes first), each splitting the account's
  first block. Per engine: the median 10^9-unit time over the median 1-unit time; the figure is
  the worse engine's ratio, which should be at most ``QUANTITY_COST_LIMIT``. Both quantities
  split the same (lowest-serial) block, so anything that depends on where a block sits costs
  them alike; only the quantity differs.

The source's blocks come from about sqrt(``blocks``) issuances, each cut into as many blocks at
once by one transfer naming the ranges (see :meth:`_Bench.fill_source`). On PostgreSQL the
bench runs ANALYZE as it goes, as autovacuum would if it is on.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from regfed.node import (
    Actor,
    Issue,
    OpenAccount,
    Registry,
    RepresentativeSpec,
    Selection,
    SerialRange,
    StatePurpose,
    Transfer,
    UnitBlock,
    UnitClass,
    open_registry,
)

Progress = Callable[[str], None]

QUANTITY_COST_LIMIT = 1.5
BIG = 10**9
TRADERS = 20
TRADER_FUNDS = 10**6
WARMUP_PAIRS = 2
SEED = 20240901
CODE = "BN"
PROGRAM, UNIT_TYPE = "RGGI", "allowance"
TRADING_VINTAGE, BULK_VINTAGE = 2025, 2026


@dataclass
class EngineFigures:
    """What one engine measured."""

    transfers_per_s: float = 0.0
    times_1_unit: list[float] = field(default_factory=list)
    times_big: list[float] = field(default_factory=list)
    blocks_in_source: int = 0
    verify_ok: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    server_version: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.times_big) / statistics.median(self.times_1_unit)


class _Bench:
    """Operations on the registry being measured."""

    def __init__(self, reg: Registry, engine: str, progress: Progress) -> None:
        self.reg = reg
        self.engine = engine
        self.progress = progress
        self.admin = reg.ledger.administrator
        self.alloc = reg.state_account(StatePurpose.ALLOCATION).label
        self.ids = itertools.count(1)

    def say(self, step: str) -> None:
        self.progress(f"{self.engine}: {step}")

    def op(self, kind: str) -> str:
        return f"bench-{kind}-{next(self.ids)}"

    def open_general(self, person: str) -> str:
        result = self.reg.ledger.open_account(
            OpenAccount(
                operation_id=self.op("open"),
                account_type="general",
                name=f"Bench {person}",
                representatives=(RepresentativeSpec(person=person, role="primary"),),
            ),
            self.admin,
        )
        return str(result.detail["account"])

    def issue(self, quantity: int, vintage: int, start: int | None = None) -> None:
        command = Issue(
            operation_id=self.op("issue"),
            program=PROGRAM,
            unit_type=UNIT_TYPE,
            vintage=vintage,
            quantity=quantity,
            to_account=self.alloc,
            start=start,
        )
        self.reg.ledger.issue(command, self.admin)

    def transfer(self, source: str, target: str, selection: Selection, actor: Actor) -> float:
        """Transfer, and return the seconds it took."""
        command = Transfer(
            operation_id=self.op("transfer"),
            from_account=source,
            to_account=target,
            selection=selection,
        )
        start = time.perf_counter()
        self.reg.ledger.transfer(command, actor)
        return time.perf_counter() - start

    def refresh_statistics(self) -> None:
        """ANALYZE on PostgreSQL, as autovacuum would (if on): without current statistics the
        planner may answer each overlap check by scanning the whole unit class."""
        if self.engine == "postgresql":
            with self.reg.engine.begin() as conn:
                conn.execute(text("ANALYZE"))

    def count_blocks(self, account: str) -> int:
        return len(self.reg.queries.holdings(account, self.admin).blocks)

    def transfer_rate(self, transfers: int) -> float:
        self.say(f"opening and funding {TRADERS} accounts")
        people = [f"trader-{i}" for i in range(TRADERS)]
        traders = [(self.open_general(p), Actor.person(p)) for p in people]
        self.issue(TRADERS * TRADER_FUNDS, TRADING_VINTAGE)
        funds = Selection(quantity=TRADER_FUNDS, vintage=TRADING_VINTAGE)
        for account, _ in traders:
            self.transfer(self.alloc, account, funds, self.admin)
        self.say(f"{transfers} transfers between random accounts")
        rng = random.Random(SEED)
        start = time.perf_counter()
        for _ in range(transfers):
            (source, actor), (target, _) = rng.sample(traders, 2)
            self.transfer(source, target, Selection(quantity=rng.randint(1, 1000)), actor)
        return transfers / (time.perf_counter() - start)

    def fill_source(self, blocks: int, block_size: int) -> str:
        """A general account holding ``blocks`` (rounded up) blocks of ``block_size`` units.

        About sqrt(blocks) issuances, each cut at once into as many blocks by one transfer naming
        the ranges. Issued top-down (explicit first serials, highest first) because the store's
        overlap query scans every row of the class below the range asked about: bottom-up, the
        setup would take time quadratic in ``blocks``.
        """
        per_issue = math.isqrt(blocks - 1) + 1
        issues = -(-blocks // per_issue)
        self.say(f"making {issues * per_issue} blocks: {issues} issuances, each cut by a transfer")
        source = self.open_general("source")
        unit_class = UnitClass(CODE, PROGRAM, UNIT_TYPE, BULK_VINTAGE)
        for done, n in enumerate(reversed(range(issues))):
            if done % 25 == 0:
                self.refresh_statistics()
                if done:
                    self.say(f"{done * per_issue} blocks made")
            first = 1 + n * per_issue * block_size
            self.issue(per_issue * block_size, BULK_VINTAGE, start=first)
            pieces = tuple(
                UnitBlock(unit_class, SerialRange(start, start + block_size - 1))
                for start in range(first, first + per_issue * block_size, block_size)
            )
            self.transfer(self.alloc, source, Selection(blocks=pieces), self.admin)
        return source

    def quantity_cost(self, source: str, repeats: int, figures: EngineFigures) -> None:
        sink = self.open_general("sink")
        self.refresh_statistics()
        owner = Actor.person("source")
        figures.blocks_in_source = self.count_blocks(source)
        self.say(f"{repeats} pairs of 1-unit and 10^9-unit transfers out of {source}")
        for i in range(WARMUP_PAIRS + repeats):
            pair = [(1, figures.times_1_unit), (BIG, figures.times_big)]
            for quantity, times in pair if i % 2 == 0 else reversed(pair):
                seconds = self.transfer(source, sink, Selection(quantity=quantity), owner)
                if i >= WARMUP_PAIRS:
                    times.append(seconds)
        if self.count_blocks(source) != figures.blocks_in_source:
            raise RuntimeError("a measured transfer moved a whole block instead of splitting one")


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = round(time.perf_counter() - start, 2)


def _bench_engine(
    url: str, engine: str, transfers: int, blocks: int, repeats: int, progress: Progress
) -> EngineFigures:
    figures = EngineFigures()
    seconds = figures.seconds
    progress(f"{engine}: opening a fresh registry")
    reg = open_registry(url, CODE)
    try:
        info = reg.engine.dialect.server_version_info or ()
        figures.server_version = ".".join(str(part) for part in info)
        bench = _Bench(reg, engine, progress)
        with _timed(seconds, "trading"):
            figures.transfers_per_s = round(bench.transfer_rate(transfers), 1)
        # Every measured transfer splits the source's first block: it must last them all.
        block_size = (WARMUP_PAIRS + repeats + 1) * BIG
        with _timed(seconds, "fill_source"):
            source = bench.fill_source(blocks, block_size)
        with _timed(seconds, "quantity_cost"):
            bench.quantity_cost(source, repeats, figures)
        bench.say("verifying the whole ledger: journal chain and replay, supply")
        with _timed(seconds, "verify"):
            figures.verify_ok = reg.queries.verify().ok
    finally:
        reg.close()
    return figures


@contextmanager
def _throwaway_database(server_url: str, progress: Progress) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it whatever happens."""
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"regfed_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        progress(f"postgresql: creating throwaway database {name}")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            progress(f"postgresql: dropping {name}")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def run_ledger_bench(
    postgres_url: str | None = "postgresql://postgres@127.0.0.1:5432/",
    *,
    transfers: int = 300,
    blocks: int = 10_000,
    repeats: int = 25,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Run the ledger benchmark on SQLite and, unless ``postgres_url`` is None, PostgreSQL."""
    if min(transfers, blocks, repeats) < 1:
        raise ValueError("transfers, blocks and repeats must be at least 1")
    start = time.perf_counter()
    results: dict[str, EngineFigures | None] = {"sqlite": None, "postgresql": None}
    with ExitStack() as stack:
        # The PostgreSQL database first, so an unreachable server fails before any work.
        pg_url = None
        if postgres_url is not None:
            pg_url = stack.enter_context(_throwaway_database(postgres_url, progress))
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="regfed-bench-"))
        sqlite_url = f"sqlite:///{os.path.join(tmp, 'registry.db')}"
        results["sqlite"] = _bench_engine(
            sqlite_url, "sqlite", transfers, blocks, repeats, progress
        )
        if pg_url is not None:
            results["postgresql"] = _bench_engine(
                pg_url, "postgresql", transfers, blocks, repeats, progress
            )

    def each(figure: Callable[[EngineFigures], Any]) -> dict[str, Any]:
        return {name: None if f is None else figure(f) for name, f in results.items()}

    worst = round(max(f.ratio for f in results.values() if f is not None), 3)
    return {
        "benchmark": "ledger",
        "transfers_per_s": each(lambda f: f.transfers_per_s),
        "quantity_cost_ratio": worst,
        "quantity_cost_limit": QUANTITY_COST_LIMIT,
        "quantity_cost_ok": worst <= QUANTITY_COST_LIMIT,
        "ratio_per_engine": each(lambda f: round(f.ratio, 3)),
        "median_s_1_unit": each(lambda f: round(statistics.median(f.times_1_unit), 6)),
        "median_s_1e9_units": each(lambda f: round(statistics.median(f.times_big), 6)),
        "blocks_in_source": each(lambda f: f.blocks_in_source),
        "verify_ok": each(lambda f: f.verify_ok),
        "repeats": repeats,
        "transfers": transfers,
        "phase_s": each(lambda f: f.seconds),
        "elapsed_s": round(time.perf_counter() - start, 1),
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "sqlalchemy": sqlalchemy.__version__,
            "server_versions": each(lambda f: f.server_version),
        },
    }
