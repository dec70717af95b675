"""`regfed report publish` refusals that need no running federation: each says what went wrong
and what to do, with --json too, and exits 2 (a refused request) or 1 (nothing to read)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def regfed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_a_bad_policy_file_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[RGGI]\nserials = 1\n")
    out = tmp_path / "site"
    readable = regfed("report", "publish", str(out), "--policy", str(policy))
    assert readable.returncode == 2, readable
    assert "POLICY_REFUSED" in readable.stderr and "true or false" in readable.stderr
    assert "what to do" in readable.stderr
    as_json = regfed("report", "publish", str(out), "--policy", str(policy), "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "POLICY_REFUSED"
    assert not out.exists()


def test_without_a_federation_it_says_where_to_find_one(tmp_path: Path) -> None:
    result = regfed(
        "report", "publish", str(tmp_path / "site"), "--federation", str(tmp_path / "none.json")
    )
    assert result.returncode == 1
    assert "regfed up DIR" in result.stderr
