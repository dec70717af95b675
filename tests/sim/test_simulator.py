"""The seeded simulator drives the real protocol core through faults and checks invariants
after every step. On failure the seed is printed; it replays exactly."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from regfed.gateway.sim import BREAKABLE, simulate

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SEEDS = int(os.environ.get("REGFED_SIM_SEEDS", "2000" if IN_CI else "200"))
#: Faults injected per scheduled step, at the least, over the whole run.
MIN_FAULT_DENSITY = 0.5


def test_many_seeds_keep_every_invariant_and_settle() -> None:
    faults: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    steps = 0
    failures = []
    for seed in range(SEEDS):
        report = simulate(seed)
        faults.update(report.faults)
        outcomes.update(report.outcomes)
        steps += report.steps
        if not report.ok:
            failures.append(
                f"seed {seed}: {report.violations} (replay: regfed sim --start {seed} --seeds 1)"
            )
    print(f"{SEEDS} seeds, faults {dict(faults)}, outcomes {dict(outcomes)}")
    assert not failures, "\n".join(failures[:10])
    assert sum(faults.values()) / steps >= MIN_FAULT_DENSITY
    for kind in ("drop", "duplicate", "reorder", "delay", "crash"):
        assert faults[kind] > SEEDS, f"too few {kind} faults: {faults[kind]}"
    # Every path is taken: commits, rejections (serials already present), cancellations.
    assert {"completed", "rejected", "cancelled"} <= set(outcomes)


def test_a_seed_replays_exactly() -> None:
    assert simulate(7).to_dict() == simulate(7).to_dict()
    assert simulate(7).to_dict() != simulate(8).to_dict()


@pytest.mark.parametrize("guard", BREAKABLE)
def test_breaking_a_guard_is_caught(guard: str) -> None:
    caught = [seed for seed in range(30) if not simulate(seed, broken=guard).ok]
    assert caught, f"the simulator did not notice {guard}"


def test_without_faults_every_transfer_commits_or_is_refused_for_cause() -> None:
    report = simulate(3, fault_rate=0.0)
    assert report.ok, report.violations
    assert report.crashes == 0 and report.faults["drop"] == 0
