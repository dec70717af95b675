"""The committed gRPC stubs are exactly what scripts/gen-protos makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-protos"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_package_is_named_proto() -> None:
    for init in ROOT.rglob("__init__.py"):
        if ".venv" in init.parts or "build" in init.parts:
            continue
        assert init.parent.name != "proto", init
