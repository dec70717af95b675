"""The benchmarks run as a user runs them and report what they claim; figures are never
asserted (speed is measured by the benchmarks, not by tests), only their meaning."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest


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
