"""``regfed certs init``: every credential of a local federation, in one folder.

Layout: ``ca.pem``/``ca.key`` (the federation authority), ``<CODE>/tls.pem``, ``tls.key``,
``signing.key``, ``signing.pub`` per registry node and for the oversight node, and
``directory.json``: the signed membership directory (version 1, loopback endpoints).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .authority import Authority, issue_node, load_signing_key
from .directory import Directory, Member
from .identity import Identity, Role

BASE_PORT = 50_051


def init_federation(
    folder: Path, registries: list[str], oversight: str, base_port: int = BASE_PORT
) -> dict[str, Any]:
    """Create the federation's credentials; refuses to overwrite an existing authority."""
    if (folder / "ca.key").exists():
        raise FileExistsError(
            f"{folder} already holds a federation authority; use another folder or reuse it"
        )
    if len(set(registries)) != len(registries) or oversight in registries:
        raise ValueError("registry codes must be distinct and differ from the oversight code")
    authority = Authority.create()
    authority.save(folder)
    members = []
    everyone = [(code, Role.REGISTRY) for code in registries] + [(oversight, Role.OVERSIGHT)]
    for port_offset, (code, role) in enumerate(everyone):
        creds = issue_node(authority, Identity(role, code), folder / code)
        signing = load_signing_key(creds.signing_key).public_key()
        raw = signing.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members.append(
            Member(
                code=code,
                role=role,
                endpoint=f"127.0.0.1:{base_port + port_offset}",
                certificate_pem=creds.tls_certificate.read_text(),
                signing_key=base64.b64encode(raw).decode(),
            )
        )
    directory = Directory(1, tuple(members))
    (folder / "directory.json").write_text(json.dumps(directory.sign(authority.key), indent=2))
    return {
        "folder": str(folder),
        "ca": str(folder / "ca.pem"),
        "directory": str(folder / "directory.json"),
        "version": directory.version,
        "members": [
            {
                "code": m.code,
                "role": m.role.value,
                "endpoint": m.endpoint,
                "key_id": m.key_id,
                "folder": str(folder / m.code),
            }
            for m in members
        ],
    }


def load_directory(folder: Path) -> Directory:
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    return Directory.verify(json.loads((folder / "directory.json").read_text()), ca)
