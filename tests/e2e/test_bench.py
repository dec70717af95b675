"""The benchmarks run as a user runs them and report what they claim; figures are never
asserted (speed is measured by the benchmarks, not by tests), only their meaning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from regfed.node import open_existing


def bench(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_transfer_bench_settles_everything_it_counts_and_audits_clean() -> None:
    figures = bench("transfers", "--duration", "3", "--traders", "4")
    assert figures["traders"] == 4 and figures["settled"] > 0
    assert figures["not_completed"] == 0 and figures["audit_problems"] == []
    assert figures["p50_ms"] <= figures["p99_ms"]
    assert figures["node_cpu_s_per_transfer"] > figures["floor_cpu_s_per_transfer"] > 0
    assert figures["floor_ratio"] > 1
    rate = figures["settled"] / figures["duration_s"]  # duration is rounded to 0.1 s
    assert figures["interstate_transfers_per_s"] == pytest.approx(rate, rel=0.05)


def test_reconcile_bench_finds_every_injected_overlap_through_real_nodes(tmp_path: Path) -> None:
    folder = tmp_path / "bench"
    figures = bench(
        "reconcile",
        "--registries", "3", "--blocks", "20000", "--overlaps", "12", "--no-naive",
        "--dir", str(folder),
    )  # fmt: skip
    assert figures["registries"] == 3 and figures["blocks"] >= 20_000
    assert figures["overlaps_injected"] == 12 and figures["overlaps_found"] == 12
    assert figures["false_positives"] == 0 and figures["missed"] == figures["unmatched"] == []
    assert figures["truncated"] is False and figures["counts"]["blocks"] == figures["blocks"]
    # The injected copies are all it finds: overlaps naming them, their classes' supply.
    assert set(figures["discrepancies_by_kind"]) == {"SERIAL_IN_TWO_PLACES", "SUPPLY_NOT_CONSERVED"}
    assert figures["discrepancies"] == sum(figures["discrepancies_by_kind"].values())
    for key in ("seconds", "blocks_per_s", "setup_seconds", "peak_rss_mb", "total_rss_mb"):
        assert figures[key] > 0, key
    assert set(figures["rss_mb"]) == {"bench", "RA", "RB", "RC"}
    assert figures["peak_rss_mb"] == max(figures["rss_mb"].values())
    # Each figure is rounded to 0.1 MB on its own, so the sum of the rounded peaks may fall
    # short of the rounded total by up to 0.05 MB per figure (seen in CI: 387.1 > 387.0).
    rounding = 0.05 * (len(figures["rss_mb"]) + 1)
    assert figures["peak_rss_mb"] < figures["total_rss_mb"]
    assert figures["total_rss_mb"] <= sum(figures["rss_mb"].values()) + rounding
    assert figures["largest_process"] in figures["rss_mb"]
    assert figures["naive_ratio"] is None and figures["naive_seconds"] is None
    # The stores were filled through the books: every registry's ledger verifies (hash chain,
    # journal replay, disjoint serials, supply), so the findings are the injections' alone.
    for code in ("RA", "RB", "RC"):
        registry = open_existing(f"sqlite:///{folder / 'federation' / code / 'registry.db'}")
        try:
            report = registry.queries.verify()
        finally:
            registry.close()
        assert report.ok, report.to_dict()


def test_reconcile_bench_compares_with_the_naive_check_at_the_largest_size_it_finishes(
    tmp_path: Path,
) -> None:
    figures = bench(
        "reconcile",
        "--registries", "3", "--blocks", "12000", "--overlaps", "12", "--dir", str(tmp_path),
    )  # fmt: skip
    assert figures["overlaps_found"] == 12 and figures["false_positives"] == 0
    # 10 000 blocks, then the size itself: both finish, so the ratio is taken at this run's size.
    assert [t["blocks_asked"] for t in figures["naive_tried"]] == [10_000, 12_000]
    assert figures["naive_blocks"] == figures["blocks"]
    assert figures["ours_at_naive_seconds"] == figures["seconds"]
    assert figures["naive_seconds"] > 0 and figures["naive_ratio"] > 0
    assert figures["naive_overlaps_found"] == 12
