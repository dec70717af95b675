"""Signed envelopes are checked, before any parsing, against the peer's certificate identity
and the key pinned in the directory."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.certs.directory import Directory, Member, MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.gateway.envelope import MAX_PAYLOAD, EnvelopeRefused, open_envelope, seal

KEYS = {code: ed25519.Ed25519PrivateKey.generate() for code in ("PA", "NY", "EPA")}


def member(
    code: str, role: Role = Role.REGISTRY, status: MemberStatus = MemberStatus.ACTIVE
) -> Member:
    raw = (
        KEYS[code]
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return Member(code, role, "127.0.0.1:1", "", base64.b64encode(raw).decode(), status)


DIRECTORY = Directory(1, (member("PA"), member("NY"), member("EPA", Role.OVERSIGHT)))
PA = Identity(Role.REGISTRY, "PA")


def refusal(envelope: object, peer: Identity = PA, directory: Directory = DIRECTORY) -> str:
    with pytest.raises(EnvelopeRefused) as caught:
        open_envelope(envelope, directory, peer)  # type: ignore[arg-type]
    return caught.value.code


def test_a_valid_envelope_opens() -> None:
    payload, sender = open_envelope(seal(b"hello", "PA", KEYS["PA"]), DIRECTORY, PA)
    assert payload == b"hello" and sender.code == "PA"


def test_every_hostile_envelope_is_refused_with_its_code() -> None:
    good = seal(b"hello", "PA", KEYS["PA"])
    assert refusal(replace(good, payload=b"hellO")) == "BAD_SIGNATURE"
    assert refusal(seal(b"hello", "PA", KEYS["NY"])) == "UNKNOWN_KEY"  # another registry's key
    assert refusal(replace(seal(b"x", "PA", KEYS["NY"]), key_id=good.key_id)) == "BAD_SIGNATURE"
    assert refusal(seal(b"hello", "NY", KEYS["NY"])) == "SENDER_MISMATCH"
    assert refusal(good, peer=Identity(Role.TRADER, "PA", "alice")) == "WRONG_ROLE"
    assert refusal(good, peer=Identity(Role.OVERSIGHT, "EPA")) == "WRONG_ROLE"
    unknown = Directory(1, (member("NY"),))
    assert refusal(good, directory=unknown) == "UNKNOWN_SENDER"
    big = b"x" * (MAX_PAYLOAD + 1)
    assert refusal(seal(big, "PA", KEYS["PA"])) == "OVERSIZED"


def test_a_suspended_member_still_verifies_so_committed_transfers_roll_forward() -> None:
    suspended = Directory(2, (member("PA", status=MemberStatus.SUSPENDED),))
    _payload, sender = open_envelope(seal(b"commit", "PA", KEYS["PA"]), suspended, PA)
    assert sender.status is MemberStatus.SUSPENDED
