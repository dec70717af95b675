"""``regfed certs init``: every credential of a local federation, in one folder.

Layout: ``ca.pem``/``ca.key`` (the federation authority), ``<CODE>/tls.pem``, ``tls.key``,
``signing.key``, ``signing.pub`` per registry node and for the oversight node, and
``directory.json``: the signed membership directory (version 1, loopback endpoints).

Each registry also gets its intermediate CA, ``<CODE>/intermediate/`` (``intermediate.pem``,
``intermediate.key``, ``crl.pem``, ``issued.json``), one administrator,
``<CODE>/administrators/admin/``, and one trader, ``<CODE>/traders/trader1/``, each with
``tls.pem``, ``tls.key`` and ``chain.pem`` (leaf then intermediate), so the federation is usable
at once.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from .authority import Authority, issue_node, load_signing_key
from .directory import Directory, Member
from .identity import Identity, Role
from .intermediate import RegistryAuthority, issue_person
from .publish import publish

LOCAL_ADMINISTRATOR = "admin"
LOCAL_TRADER = "trader1"

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
    people: dict[str, dict[str, Any]] = {}
    for code in registries:
        intermediate = create_intermediate(folder, code, authority)
        admin = issue_person(intermediate, Role.ADMINISTRATOR, LOCAL_ADMINISTRATOR)
        trader = issue_person(intermediate, Role.TRADER, LOCAL_TRADER)
        people[code] = {
            "intermediate": str(intermediate / "intermediate.pem"),
            "crl": str(intermediate / "crl.pem"),
            "administrator": admin.to_dict(),
            "trader": trader.to_dict(),
        }
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
                **people.get(m.code, {}),
            }
            for m in members
        ],
    }


def intermediate_folder(authority_folder: Path, registry: str) -> Path:
    """Where a local federation keeps ``registry``'s intermediate CA."""
    return authority_folder / registry / "intermediate"


def create_intermediate(
    authority_folder: Path, registry: str, authority: Authority | None = None
) -> Path:
    """``registry``'s intermediate CA, signed by the authority in ``authority_folder``.

    The local path: the authority makes the key too. In production the registry makes its own
    key and sends a CSR with its membership request (:mod:`regfed.certs.requests`).
    """
    folder = intermediate_folder(authority_folder, registry)
    if (folder / "intermediate.key").exists():
        raise FileExistsError(f"{folder} already holds {registry}'s intermediate CA")
    RegistryAuthority.create(authority or Authority.load(authority_folder), registry).save(folder)
    return folder


def create_authority(folder: Path) -> dict[str, Any]:
    """A federation authority with no members yet: directory version 1, empty."""
    if (folder / "ca.key").exists():
        raise FileExistsError(
            f"{folder} already holds a federation authority; use another folder or reuse it"
        )
    Authority.create().save(folder)
    directory = publish(folder, lambda d: d)
    return {
        "ok": True,
        "folder": str(folder),
        "ca": str(folder / "ca.pem"),
        "directory": str(folder / "directory.json"),
        "version": directory.version,
    }


def load_directory(folder: Path) -> Directory:
    ca = Authority.load_certificate(folder)
    return Directory.verify(json.loads((folder / "directory.json").read_text()), ca)
