"""Local federation credentials: certificates the CA (and openssl) accept, private keys 0600,
a directory signed by the authority whose version only moves forward."""

from __future__ import annotations

import json
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from regfed.certs.authority import Authority
from regfed.certs.directory import Directory, DirectoryError, MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.certs.local import init_federation, load_directory


@pytest.fixture
def federation(tmp_path: Path) -> Path:
    init_federation(tmp_path / "fed", ["PA", "NY", "NJ"], "EPA")
    return tmp_path / "fed"


def test_openssl_accepts_every_certificate_against_the_ca(federation: Path) -> None:
    for code in ("PA", "NY", "NJ", "EPA"):
        result = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(federation / "ca.pem"),
                str(federation / code / "tls.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result


def test_certificates_name_role_and_registry_in_the_san(federation: Path) -> None:
    for code, role in (("PA", Role.REGISTRY), ("EPA", Role.OVERSIGHT)):
        cert = x509.load_pem_x509_certificate((federation / code / "tls.pem").read_bytes())
        assert Identity.of_certificate(cert) == Identity(role, code)


def test_private_keys_are_owner_only(federation: Path) -> None:
    keys = [federation / "ca.key"] + [
        federation / c / name
        for c in ("PA", "NY", "NJ", "EPA")
        for name in ("tls.key", "signing.key")
    ]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_directory_is_signed_by_the_authority_only(federation: Path) -> None:
    directory = load_directory(federation)
    assert directory.version == 1
    assert [m.code for m in directory.members] == ["PA", "NY", "NJ", "EPA"]
    signed = json.loads((federation / "directory.json").read_text())
    # Another CA's signature, or an edited payload, is refused.
    impostor = Authority.create()
    with pytest.raises(DirectoryError) as caught:
        Directory.verify(directory.sign(impostor.key), Authority.load(federation).certificate)
    assert caught.value.code == "DIRECTORY_BAD_SIGNATURE"
    tampered = dict(signed, payload=signed["payload"][:-8] + "AAAAAAA=")
    with pytest.raises(DirectoryError):
        Directory.verify(tampered, Authority.load(federation).certificate)


def test_an_older_directory_is_refused(federation: Path) -> None:
    directory = load_directory(federation)
    suspended = Directory(
        2,
        tuple(
            replace(m, status=MemberStatus.SUSPENDED) if m.code == "NJ" else m
            for m in directory.members
        ),
    )
    assert suspended.replacing(highest_seen=1) is suspended
    with pytest.raises(DirectoryError) as caught:
        directory.replacing(highest_seen=2)
    assert caught.value.code == "DIRECTORY_STALE"


def test_init_never_overwrites_an_authority(federation: Path) -> None:
    with pytest.raises(FileExistsError):
        init_federation(federation, ["PA"], "EPA")
