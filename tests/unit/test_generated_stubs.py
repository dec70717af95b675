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


def test_every_generated_module_imports_from_inside_the_package() -> None:
    # The installed package has no top-level `peer`, `reconciliation`...: an import the
    # generator left absolute fails only when the stub is first used.
    import importlib

    generated = ROOT / "gateway" / "_generated"
    for module in sorted(generated.rglob("*_pb2*.py")):
        name = ".".join(module.relative_to(generated).with_suffix("").parts)
        importlib.import_module(f"regfed.gateway._generated.{name}")
