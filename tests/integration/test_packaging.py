"""The distribution installs one import name, `regfed`, and every package the code needs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setuptools_config() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(config["tool"]["setuptools"])


def test_wheel_installs_only_the_regfed_top_level_name(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = list(tmp_path.glob("regfed-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"regfed"}, f"unexpected top-level names: {top - dist_info}"
    assert "regfed/node/storage/migrations/versions/0001_initial_schema.py" in names
    assert "regfed/node/storage/migrations/script.py.mako" in names
    assert "regfed/py.typed" in names


def test_every_package_folder_is_listed_for_installation() -> None:
    config = _setuptools_config()
    mapping = dict(config["package-dir"])  # type: ignore[call-overload]
    listed = set(config["packages"])  # type: ignore[call-overload]
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            name = ".".join((package, *relative))
            # A folder mapped on its own belongs to that mapping, not to its parent's.
            if not any(
                name.startswith(p + ".") or name == p
                for p in mapping
                if p != package
                and p.startswith(package + ".")
                and ROOT / mapping[p] in init.parents
            ):
                found.add(name)
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_the_regfed_command_is_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("regfed ")


def test_the_image_copies_every_folder_the_distribution_installs() -> None:
    """The Dockerfile installs from a copy of the source folders: one missing (a new top-level
    package) would break the image build, not any test that runs from the checkout."""
    package_dir = _setuptools_config()["package-dir"]
    assert isinstance(package_dir, dict)
    needed = {str(folder).split("/")[0] for folder in package_dir.values()}
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert needed <= copied, f"Dockerfile does not COPY {sorted(needed - copied)}"
