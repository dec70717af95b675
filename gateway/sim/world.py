"""The simulated federation: nodes with durable state, a faulty network, a seeded schedule.

Each step the schedule picks one event (start a transfer, deliver, drop, duplicate or reorder a
message, advance a node's clock, cancel, crash or restart a node). A decision is applied as the
real adapter will: record, ledger operation and outbox atomically, then the sends; a crash may
fall before the persist or between any two sends, and loses everything not yet persisted. After
every step the invariants are checked. Then the faults stop and the run must settle: every
transfer final on both sides, in states that agree, nothing left pinned. A failing seed replays
exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..protocol import (
    Decision,
    DestinationRecord,
    Kind,
    LedgerOp,
    Lot,
    Message,
    Refusal,
    SourceRecord,
    TransferStatus,
    destination,
    source,
)
from .ledger import Entry, LedgerMismatch, Serial, SimLedger

#: Guards that ``simulate(..., broken=NAME)`` removes on purpose, to show the checks catch it.
BREAKABLE = ("credit-before-commit", "void-after-commit")
HOLD_SECONDS = 30.0
ASK_AFTER = 10.0


class Violation(Exception):
    pass


@dataclass
class Node:
    name: str
    ledger: SimLedger = field(default_factory=SimLedger)
    sources: dict[str, SourceRecord] = field(default_factory=dict)
    destinations: dict[str, DestinationRecord] = field(default_factory=dict)
    clock: float = 0.0
    up: bool = True
    #: Ledger operations applied per transfer: a hold resolves once.
    applied: dict[str, list[LedgerOp]] = field(default_factory=dict)


@dataclass
class SimReport:
    seed: int
    steps: int
    transfers: int
    faults: Counter[str]
    crashes: int
    violations: list[str]
    outcomes: Counter[str]

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "ok": self.ok,
            "steps": self.steps,
            "transfers": self.transfers,
            "faults": dict(sorted(self.faults.items())),
            "crashes": self.crashes,
            "violations": self.violations,
            "outcomes": dict(sorted(self.outcomes.items())),
        }


@dataclass
class _InFlight:
    message: Message
    sent_at_tick: int


class World:
    def __init__(self, seed: int, registries: int, fault_rate: float, broken: str | None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.fault_rate = fault_rate
        self.broken = broken
        self.faults: Counter[str] = Counter()
        self.crashes = 0
        self.ticks = 0
        self.network: list[_InFlight] = []
        self.nodes = {code: Node(code) for code in [f"R{i}" for i in range(registries)]}
        self.issued: set[Serial] = set()
        self.transfers = 0
        for index, node in enumerate(self.nodes.values()):
            for account in range(2):
                for serial in range(1 + account * 20, 21 + account * 20):
                    key = (node.name, serial + 1000 * index)
                    node.ledger.entries[key] = Entry(f"{node.name}-acct{account}", "held")
                    self.issued.add(key)

    # -- applying decisions the way a real adapter does ---------------------------------------

    def execute(self, node: Node, decision: Decision[Any], *, may_crash: bool) -> None:
        crash_at = -1
        if may_crash and self.rng.random() < self.fault_rate / 4:
            crash_at = self.rng.randint(0, len(decision.send))  # 0: before the persist
        if crash_at == 0:
            self.crash(node)
            return
        self.persist(node, decision)
        for i, message in enumerate(decision.send, start=1):
            if crash_at == i:
                self.crash(node)
                return
            self.network.append(_InFlight(message, self.ticks))
        if crash_at == len(decision.send) + 1:
            self.crash(node)

    def persist(self, node: Node, decision: Decision[Any]) -> None:
        record = decision.record
        if isinstance(record, SourceRecord):
            node.sources[record.transfer_id] = record
        else:
            node.destinations[record.transfer_id] = record
        op = decision.ledger
        if op is LedgerOp.PIN and self.broken == "credit-before-commit":
            op = LedgerOp.CREDIT
        if op is not None:
            ops = node.applied.setdefault(record.transfer_id, [])
            resolutions = (LedgerOp.RELEASE, LedgerOp.DEBIT, LedgerOp.UNPIN, LedgerOp.CREDIT)
            if op in resolutions and any(o in resolutions for o in ops):
                raise Violation(
                    f"hold of {record.transfer_id} at {node.name} resolved twice: "
                    f"{[o.value for o in (*ops, op)]}"
                )
            ops.append(op)
            node.ledger.apply(op, record.lot, record.transfer_id)

    def crash(self, node: Node) -> None:
        node.up = False
        self.crashes += 1
        self.faults["crash"] += 1

    def restart(self, node: Node) -> None:
        """A restarted node re-drives every transfer that is not settled."""
        node.up = True
        for record in list(node.sources.values()):
            decision = source.tick(record, node.clock)
            if decision is not None:
                self.execute(node, decision, may_crash=False)

    # -- events -------------------------------------------------------------------------------

    def start_transfer(self) -> None:
        up = [n for n in self.nodes.values() if n.up]
        if not up:
            return
        node = self.rng.choice(up)
        account = f"{node.name}-acct{self.rng.randint(0, 1)}"
        runs = node.ledger.held_runs(account)
        if not runs:
            return
        run = self.rng.choice(runs)
        start = self.rng.randint(run.serials.start, run.serials.end)
        end = self.rng.randint(start, run.serials.end)
        block = type(run)(run.unit_class, type(run.serials)(start, end))
        target = self.rng.choice([n for n in self.nodes if n != node.name])
        lot = Lot((block,), account, f"{target}-acct{self.rng.randint(0, 1)}")
        self.transfers += 1
        tid = f"{node.name}-{self.seed}-{self.transfers}"
        self.execute(
            node,
            source.propose(tid, node.name, target, lot, node.clock, HOLD_SECONDS),
            may_crash=True,
        )

    def deliver(self, faults: bool) -> None:
        if not self.network:
            return
        index = self.rng.randrange(len(self.network)) if faults else 0
        if index:
            self.faults["reorder"] += 1
        flight = self.network.pop(index)
        if faults and self.rng.random() < self.fault_rate:
            self.faults["drop"] += 1
            return
        if faults and self.rng.random() < self.fault_rate:
            self.faults["duplicate"] += 1
            self.network.append(_InFlight(flight.message, self.ticks))
        if faults and flight.sent_at_tick < self.ticks:
            self.faults["delay"] += 1
        node = self.nodes[flight.message.receiver]
        if not node.up:
            return  # lost: the sender re-sends from its outbox
        self.receive(node, flight.message, may_crash=faults)

    def receive(self, node: Node, message: Message, *, may_crash: bool) -> None:
        tid = message.transfer_id
        outcome: Decision[Any] | Refusal | None
        if tid in node.sources and message.kind not in (Kind.PROPOSE, Kind.COMMIT, Kind.VOID):
            outcome = source.receive(node.sources[tid], message, node.clock)
        else:
            existing = node.destinations.get(tid)
            verdict = None
            if message.kind is Kind.PROPOSE and existing is None:
                verdict = node.ledger.verdict(Lot.from_body(message.body))
                if self.broken == "credit-before-commit":
                    verdict = None
            outcome = destination.receive(existing, message, node.name, node.clock, verdict)
        if isinstance(outcome, Decision):
            self.execute(node, outcome, may_crash=may_crash)

    def tick(self, node: Node, seconds: float) -> None:
        self.ticks += 1
        node.clock += seconds
        for record in list(node.sources.values()):
            if (
                self.broken == "void-after-commit"
                and record.status is TransferStatus.COMPLETED
                and node.clock >= record.expires_at
                and not record.settled
            ):
                broken_void = source._void(record, "hold expired")
                self.execute(node, broken_void, may_crash=False)
                continue
            decision = source.tick(record, node.clock)
            if decision is not None:
                self.execute(node, decision, may_crash=False)
        for dest in list(node.destinations.values()):
            query = destination.tick(dest, node.clock, ASK_AFTER)
            if query is not None:
                self.network.append(_InFlight(query, self.ticks))

    def cancel(self) -> None:
        node = self.rng.choice(list(self.nodes.values()))
        open_ones = [r for r in node.sources.values() if r.status is TransferStatus.PROPOSED]
        if node.up and open_ones:
            outcome = source.cancel(self.rng.choice(open_ones), "trader cancel")
            if isinstance(outcome, Decision):
                self.execute(node, outcome, may_crash=True)

    # -- invariants ---------------------------------------------------------------------------

    def check(self) -> None:
        owners: dict[Serial, list[str]] = {}
        committed = {
            tid
            for n in self.nodes.values()
            for tid, r in n.sources.items()
            if r.status is TransferStatus.COMPLETED
        }
        for node in self.nodes.values():
            for serial, entry in node.ledger.entries.items():
                if entry.state in ("held", "escrowed") or (
                    entry.state == "incoming" and entry.transfer_id in committed
                ):
                    owners.setdefault(serial, []).append(f"{node.name}:{entry.state}")
        for serial in self.issued:
            found = owners.get(serial, [])
            if len(found) != 1:
                raise Violation(f"serial {serial} has {len(found)} owners: {found}")
        if set(owners) != self.issued:
            raise Violation("serials exist that were never issued")

    def check_settled(self) -> None:
        for node in self.nodes.values():
            for tid, record in node.sources.items():
                if not (record.status.final and record.settled):
                    raise Violation(f"{tid} did not settle: {record.status.value} at the source")
                there = self.nodes[record.destination].destinations.get(tid)
                agreements: dict[TransferStatus, set[TransferStatus | None]] = {
                    TransferStatus.COMPLETED: {TransferStatus.COMPLETED},
                    TransferStatus.REJECTED: {TransferStatus.REJECTED},
                    TransferStatus.CANCELLED: {
                        None,
                        TransferStatus.CANCELLED,
                        TransferStatus.REJECTED,
                    },
                }
                agreed = agreements[record.status]
                if (there.status if there else None) not in agreed:
                    raise Violation(
                        f"{tid}: source {record.status.value}, destination "
                        f"{there.status.value if there else 'none'}"
                    )
            for serial, entry in node.ledger.entries.items():
                if entry.state == "incoming":
                    raise Violation(f"serial {serial} still pinned at {node.name} after settling")

    def outcomes(self) -> Counter[str]:
        return Counter(r.status.value for n in self.nodes.values() for r in n.sources.values())


def simulate(
    seed: int,
    *,
    steps: int = 300,
    registries: int = 3,
    fault_rate: float = 0.2,
    broken: str | None = None,
) -> SimReport:
    """Run one seeded simulation; the same arguments always give the same report."""
    if broken is not None and broken not in BREAKABLE:
        raise ValueError(f"unknown guard {broken!r}; breakable: {', '.join(BREAKABLE)}")
    world = World(seed, registries, fault_rate, broken)
    violations: list[str] = []
    events = ("start", "deliver", "deliver", "deliver", "tick", "cancel", "crash", "restart")
    step = 0
    try:
        for step in range(steps):  # noqa: B007 - reported below
            event = world.rng.choice(events)
            nodes = list(world.nodes.values())
            if event == "start":
                world.start_transfer()
            elif event == "deliver":
                world.deliver(faults=True)
            elif event == "tick":
                world.tick(world.rng.choice(nodes), world.rng.uniform(0, HOLD_SECONDS / 3))
            elif event == "cancel":
                world.cancel()
            elif event == "crash" and world.rng.random() < world.fault_rate:
                up = [n for n in nodes if n.up]
                if up:
                    world.crash(world.rng.choice(up))
            elif event == "restart":
                down = [n for n in nodes if not n.up]
                if down:
                    world.restart(world.rng.choice(down))
            world.check()
        # The faults stop: restart everyone and let time pass until everything settles.
        for node in world.nodes.values():
            if not node.up:
                world.restart(node)
        for _round in range(200):
            while world.network:
                world.deliver(faults=False)
                world.check()
            for node in world.nodes.values():
                world.tick(node, ASK_AFTER)
            world.check()
            if not world.network and all(
                r.settled for n in world.nodes.values() for r in n.sources.values()
            ):
                break
        world.check_settled()
    except (Violation, LedgerMismatch) as error:
        violations.append(f"step {step}: {error}")
    return SimReport(
        seed=seed,
        steps=steps,
        transfers=world.transfers,
        faults=world.faults,
        crashes=world.crashes,
        violations=violations,
        outcomes=world.outcomes(),
    )
