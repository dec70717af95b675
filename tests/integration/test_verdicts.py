"""A registry node's side of reconciliation verdicts, on both engines: a verdict signed with the
oversight key pinned in the directory quarantines exactly the named blocks; a forged, unsigned,
misaddressed or older one is refused, changes nothing in the ledger and leaves a line in the
security log."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.certs.directory import Directory, Member
from regfed.certs.documents import DocumentRefused, SignedDocument, sign_document
from regfed.certs.identity import Role
from regfed.gateway.service import Gateway
from regfed.gateway.store import GatewayRecords
from regfed.gateway.verdicts import VERDICT_FORMAT, VerdictRefused, accept_verdict
from regfed.node import Registry, RegistryError, SerialRange, UnitBlock, UnitClass, open_registry
from support import fund, issue, ledger_digest, open_general

UC = UnitClass("PA", "RGGI", "allowance", 2025)


def _member(code: str, role: Role, key: ed25519.Ed25519PrivateKey) -> Member:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Member(code, role, "127.0.0.1:1", "", base64.b64encode(raw).decode())


@pytest.fixture
def node(db_url: str) -> Iterator[tuple[Gateway, Registry, ed25519.Ed25519PrivateKey, str]]:
    registry = open_registry(db_url, "PA")
    pa_key, epa_key = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    directory = Directory(
        1, (_member("PA", Role.REGISTRY, pa_key), _member("EPA", Role.OVERSIGHT, epa_key))
    )
    gateway = Gateway(registry, pa_key, directory)
    account = open_general(registry, "alice")
    issue(registry, 100)
    fund(registry, account, 40)  # 1-40 at alice, 41-100 in the allocation account
    yield gateway, registry, epa_key, account
    registry.close()


def verdict(
    sequence: int, *, registry: str = "PA", release: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "format": VERDICT_FORMAT,
        "oversight": "EPA",
        "run_id": f"run-{sequence}",
        "sequence": sequence,
        "status": "completed" if release else "inconsistent",
        "registry": registry,
        "finished_at": "2026-11-23T02:00:00Z",
        "release": release,
        "disputed": [] if release else [UnitBlock(UC, SerialRange(5, 6)).to_dict()],
        **extra,
    }


def quarantined(registry: Registry) -> list[tuple[int, int]]:
    with registry.ledger.store.read() as tx:
        return [(h.serials.start, h.serials.end) for h in tx.quarantined_blocks()]


def refusals(gateway: Gateway) -> list[str]:
    return [r["code"] for r in gateway.read(lambda tx: GatewayRecords(tx).security_log())]


def test_a_verified_verdict_quarantines_then_a_clean_one_releases(node: Any) -> None:
    gateway, registry, epa, _account = node
    result = accept_verdict(gateway, sign_document(verdict(1), epa))
    assert result.detail["quarantined"] == [UnitBlock(UC, SerialRange(5, 6)).to_dict()]
    assert quarantined(registry) == [(5, 6)]  # alice's 1-40 split: only 5-6 disputed
    accept_verdict(gateway, sign_document(verdict(2, release=True), epa))
    assert quarantined(registry) == []
    assert registry.queries.verify().ok


@pytest.mark.parametrize(
    ("forge", "code"),
    [
        ("other-key", "BAD_SIGNATURE"),
        ("unsigned", "UNSIGNED"),
        ("tampered", "BAD_SIGNATURE"),
        ("other-registry", "WRONG_REGISTRY"),
        ("not-a-verdict", "MALFORMED"),
        ("older", "STALE_VERDICT"),
    ],
)
def test_forged_unsigned_misaddressed_or_older_verdicts_change_nothing(
    node: Any, forge: str, code: str
) -> None:
    gateway, registry, epa, _account = node
    accept_verdict(gateway, sign_document(verdict(5, release=True), epa))
    before = ledger_digest(registry)
    document = sign_document(verdict(6), epa)
    if forge == "other-key":
        document = sign_document(verdict(6), ed25519.Ed25519PrivateKey.generate())
        document = SignedDocument(
            document.payload, document.signature, sign_document({}, epa).key_id
        )
    elif forge == "unsigned":
        document = SignedDocument(document.payload, b"", document.key_id)
    elif forge == "tampered":
        document = SignedDocument(
            document.payload.replace(b'"start":5', b'"start":1'),
            document.signature,
            document.key_id,
        )
    elif forge == "other-registry":
        document = sign_document(verdict(6, registry="NY"), epa)
    elif forge == "not-a-verdict":
        document = sign_document({**verdict(6), "format": "something-else"}, epa)
    elif forge == "older":
        document = sign_document(verdict(4), epa)
    with pytest.raises((DocumentRefused, VerdictRefused, RegistryError)) as caught:
        accept_verdict(gateway, document)
    assert getattr(caught.value, "code", None) == code
    assert ledger_digest(registry) == before, "a refused verdict changed the ledger"
    assert quarantined(registry) == []
    assert refusals(gateway)[0] == code
