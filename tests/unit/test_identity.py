"""Identities in certificates, what an intermediate says it serves, and the directory's status
rules, all in memory."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from regfed.certs.authority import Authority, host_name
from regfed.certs.directory import Directory, DirectoryError, Member, MemberStatus, accept
from regfed.certs.identity import Identity, Role
from regfed.certs.intermediate import RegistryAuthority, served_registry
from regfed.certs.publish import with_member, with_status
from regfed.certs.verify import check_client

AUTHORITY = Authority.create()


def member(code: str, status: MemberStatus = MemberStatus.ACTIVE) -> Member:
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return Member(code, Role.REGISTRY, "h:1", "", base64.b64encode(raw).decode(), status)


@pytest.mark.parametrize(
    "uri",
    [
        "urn:regfed:registry:PA",
        "urn:regfed:oversight:EPA",
        "urn:regfed:administrator:NY:admin",
        "urn:regfed:trader:NJ:alice.smith@acme-1",
    ],
)
def test_identities_round_trip(uri: str) -> None:
    assert Identity.parse(uri).uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "urn:regfed:registry:pa",
        "urn:regfed:broker:PA",
        "urn:regfed:trader:PA:al ice",
        "urn:regfed:registry-ca:PA",
        "urn:regfed:trader:PA:",
    ],
)
def test_other_uris_are_not_identities(uri: str) -> None:
    with pytest.raises(ValueError):
        Identity.parse(uri)


def test_an_intermediate_serves_one_registry_and_is_no_identity() -> None:
    pa = RegistryAuthority.create(AUTHORITY, "PA")
    assert served_registry(pa.certificate) == "PA"
    assert served_registry(AUTHORITY.certificate) is None
    # Presented as if it were a client's certificate, it names no regfed identity.
    with pytest.raises(ValueError):
        Identity.of_certificate(pa.certificate)
    with pytest.raises(ValueError):
        RegistryAuthority.create(AUTHORITY, "pa")
    constraints = pa.certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    assert constraints.permitted_subtrees is not None
    basic = pa.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0


def test_check_client_accepts_a_fresh_trader_chain() -> None:
    pa = RegistryAuthority.create(AUTHORITY, "PA")
    leaf = pa.issue(
        Identity(Role.TRADER, "PA", "alice"), ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    identity = check_client([pa.certificate, leaf], AUTHORITY.certificate)
    assert identity == Identity(Role.TRADER, "PA", "alice")


def test_node_hosts_become_ip_or_dns_names() -> None:
    assert isinstance(host_name("10.1.2.3"), x509.IPAddress)
    assert isinstance(host_name("[::1]"), x509.IPAddress)
    assert host_name("pa.example") == x509.DNSName("pa.example")


def test_status_moves() -> None:
    directory = Directory(3, (member("PA"), member("NY")))
    suspended = with_status(directory, "PA", MemberStatus.SUSPENDED)
    assert suspended.member("PA").status is MemberStatus.SUSPENDED  # type: ignore[union-attr]
    assert suspended.member("NY").status is MemberStatus.ACTIVE  # type: ignore[union-attr]
    back = with_status(suspended, "PA", MemberStatus.ACTIVE)
    assert back.member("PA").status is MemberStatus.ACTIVE  # type: ignore[union-attr]
    removed = with_status(suspended, "PA", MemberStatus.REMOVED)

    def code(d: Directory, c: str, status: MemberStatus) -> str:
        with pytest.raises(DirectoryError) as caught:
            with_status(d, c, status)
        return caught.value.code

    assert code(directory, "PA", MemberStatus.ACTIVE) == "STATUS_UNCHANGED"
    assert code(suspended, "PA", MemberStatus.SUSPENDED) == "STATUS_UNCHANGED"
    assert code(removed, "PA", MemberStatus.ACTIVE) == "MEMBER_REMOVED"
    assert code(directory, "ZZ", MemberStatus.REMOVED) == "UNKNOWN_MEMBER"


def test_adding_or_rekeying_a_member_keeps_its_status() -> None:
    directory = Directory(1, (member("PA", MemberStatus.SUSPENDED),))
    rekeyed = with_member(directory, member("PA"))
    assert rekeyed.member("PA").status is MemberStatus.SUSPENDED  # type: ignore[union-attr]
    added = with_member(directory, member("NY"))
    assert [m.code for m in added.members] == ["PA", "NY"]
    removed = Directory(1, (member("PA", MemberStatus.REMOVED),))
    with pytest.raises(DirectoryError):
        with_member(removed, member("PA"))
    readmitted = with_member(removed, member("PA"), readmit=True)
    assert readmitted.member("PA").status is MemberStatus.ACTIVE  # type: ignore[union-attr]


def test_accept_verifies_then_refuses_older_versions() -> None:
    signed = Directory(5, (member("PA"),)).sign(AUTHORITY.key)
    assert accept(signed, AUTHORITY.certificate, highest_seen=4).version == 5
    assert accept(signed, AUTHORITY.certificate, highest_seen=5).version == 5
    with pytest.raises(DirectoryError) as stale:
        accept(signed, AUTHORITY.certificate, highest_seen=6)
    assert stale.value.code == "DIRECTORY_STALE"
