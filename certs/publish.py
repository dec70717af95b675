"""The federation authority's side of the directory: every change publishes a new version.

Each change (a member added or re-keyed, suspended, reinstated, removed) is a new directory whose
version is the current one plus one, signed with the CA key and written over ``directory.json``
(write, then rename) with a copy kept in ``history/``. Nodes refuse any version lower than one
they have accepted, so an old directory cannot be replayed to undo a suspension or a removal.

Status rules: suspend an active member; reinstate a suspended one; remove an active or suspended
one. Removal ends the member's keys: a removed member cannot be reinstated, and signing a new
request for it needs an explicit re-admission (``readmit``) with keys it has never used before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .authority import Authority
from .directory import Directory, DirectoryError, Member, MemberStatus

DIRECTORY_FILE = "directory.json"
HISTORY = "history"


def current(folder: Path) -> Directory:
    """The authority's published directory, verified against its own CA certificate."""
    path = folder / DIRECTORY_FILE
    if not path.exists():
        return Directory(0, ())
    authority_cert = Authority.load_certificate(folder)
    return Directory.verify(json.loads(path.read_text()), authority_cert)


def publish(folder: Path, change: Callable[[Directory], Directory]) -> Directory:
    """Apply ``change`` to the current directory and publish the result as version + 1."""
    authority = Authority.load(folder)
    now = current(folder)
    changed = Directory(now.version + 1, change(now).members)
    signed = json.dumps(changed.sign(authority.key), indent=2) + "\n"
    (folder / HISTORY).mkdir(exist_ok=True)
    (folder / HISTORY / f"directory-v{changed.version:06d}.json").write_text(signed)
    tmp = folder / (DIRECTORY_FILE + ".tmp")
    tmp.write_text(signed)
    tmp.replace(folder / DIRECTORY_FILE)
    return changed


def with_member(directory: Directory, member: Member, *, readmit: bool = False) -> Directory:
    """Add ``member``, or replace its certificate, endpoint and key; its status is kept.

    A removed member comes back (active) only with ``readmit`` and a new signing key.
    """
    existing = directory.member(member.code)
    if existing is None:
        return Directory(directory.version, (*directory.members, member))
    if existing.status is MemberStatus.REMOVED:
        if not readmit:
            raise DirectoryError("MEMBER_REMOVED", f"{member.code} was removed from the federation")
        if existing.signing_key == member.signing_key:
            raise DirectoryError(
                "KEY_REUSED", f"{member.code} must rejoin with keys it has never used before"
            )
        existing = replace(existing, status=MemberStatus.ACTIVE)
    if existing.role is not member.role:
        raise DirectoryError(
            "ROLE_MISMATCH",
            f"{member.code} is a {existing.role.value} member, the request is for a "
            f"{member.role.value}",
        )
    updated = replace(member, status=existing.status)
    return Directory(
        directory.version,
        tuple(updated if m.code == member.code else m for m in directory.members),
    )


_VERB = {
    MemberStatus.SUSPENDED: "suspend",
    MemberStatus.ACTIVE: "reinstate",
    MemberStatus.REMOVED: "remove",
}


def with_status(directory: Directory, code: str, status: MemberStatus) -> Directory:
    """``code`` moved to ``status``, or :class:`DirectoryError` if the move is not allowed."""
    member = directory.member(code)
    if member is None:
        raise DirectoryError("UNKNOWN_MEMBER", f"{code} is not in directory v{directory.version}")
    if member.status is MemberStatus.REMOVED:
        raise DirectoryError("MEMBER_REMOVED", f"cannot {_VERB[status]} {code}: it was removed")
    if member.status is status:
        raise DirectoryError("STATUS_UNCHANGED", f"cannot {_VERB[status]} {code}: it is {status}")
    return Directory(
        directory.version,
        tuple(replace(m, status=status) if m.code == code else m for m in directory.members),
    )


def set_status(folder: Path, code: str, status: MemberStatus) -> Directory:
    return publish(folder, lambda d: with_status(d, code, status))
