"""Registry intermediates and people's certificates: openssl accepts what regfed issues, and
check_client refuses, with a stable code, every chain a gRPC port must not let in."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from regfed.certs.authority import Authority, pem_cert
from regfed.certs.identity import Identity, Role
from regfed.certs.intermediate import (
    RegistryAuthority,
    issue_person,
    load_crl,
    registry_name,
    revoke,
    serials_of,
)
from regfed.certs.local import init_federation
from regfed.certs.verify import CODES, CertificateRefused, check_client, identity_of_peer_chain


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fed") / "fed"
    init_federation(folder, ["PA", "NY"], "EPA")
    return folder


def ca(fed: Path) -> x509.Certificate:
    return Authority.load_certificate(fed)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def crls(fed: Path) -> list[x509.CertificateRevocationList]:
    return [load_crl(fed / code / "intermediate" / "crl.pem") for code in ("PA", "NY")]


def openssl_verify(fed: Path, leaf: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "verify",
            *extra,
            "-CAfile",
            str(fed / "ca.pem"),
            "-untrusted",
            str(fed / "PA" / "intermediate" / "intermediate.pem"),
            str(leaf),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def refused(
    chain: bytes,
    fed: Path,
    *,
    lists: list[x509.CertificateRevocationList] | None = None,
    now: dt.datetime | None = None,
) -> str:
    with pytest.raises(CertificateRefused) as caught:
        identity_of_peer_chain(chain, ca(fed), crls(fed) if lists is None else lists, now=now)
    assert caught.value.code in CODES
    return caught.value.code


def forge(
    signer: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    uris: list[str],
    *,
    subject: x509.Name | None = None,
    ca: bool = False,
    usage: list[x509.ObjectIdentifier] | None = None,
    days: int = 30,
) -> x509.Certificate:
    """A certificate regfed would never issue, signed with a real key: what an attacker (or a
    careless registry administrator with its intermediate's key) could make."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or registry_name("PA", "forged"))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(usage or [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def test_openssl_accepts_people_certificates_with_the_intermediate_untrusted(fed: Path) -> None:
    for person in ("administrators/admin", "traders/trader1"):
        leaf = fed / "PA" / person / "tls.pem"
        result = openssl_verify(fed, leaf, "-purpose", "sslclient")
        assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result
        # The chain file is what a TLS client presents: leaf first, then the intermediate.
        chain = (fed / "PA" / person / "chain.pem").read_bytes()
        assert chain == leaf.read_bytes() + (fed / "PA/intermediate/intermediate.pem").read_bytes()
    with_crl = openssl_verify(
        fed,
        fed / "PA/traders/trader1/tls.pem",
        "-crl_check",
        "-CRLfile",
        str(fed / "PA/intermediate/crl.pem"),
    )
    assert with_crl.returncode == 0, with_crl


def test_openssl_refuses_what_an_intermediate_must_not_make(fed: Path, tmp_path: Path) -> None:
    # A people's certificate is for clients only: no TLS server may present one.
    server = openssl_verify(fed, fed / "PA/traders/trader1/tls.pem", "-purpose", "sslserver")
    assert server.returncode != 0
    # Without its intermediate, a trader's certificate does not lead to the CA.
    alone = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(fed / "ca.pem"),
            str(fed / "PA/traders/trader1/tls.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode != 0
    # The name constraint: PA's intermediate cannot sign a subject outside OU=PA.
    pa = RegistryAuthority.load(fed / "PA" / "intermediate")
    outside = forge(
        pa.key,
        pa.certificate.subject,
        ["urn:regfed:trader:NY:mallory"],
        subject=registry_name("NY", "trader NY mallory"),
    )
    (tmp_path / "outside.pem").write_bytes(pem_cert(outside))
    result = openssl_verify(fed, tmp_path / "outside.pem")
    assert result.returncode != 0 and "permitted subtree violation" in result.stderr


def test_people_keys_are_owner_only_and_recorded(fed: Path) -> None:
    for path in (
        "PA/intermediate/intermediate.key",
        "PA/administrators/admin/tls.key",
        "PA/traders/trader1/tls.key",
        "NY/traders/trader1/tls.key",
    ):
        assert stat.S_IMODE((fed / path).stat().st_mode) == 0o600, path
    assert len(serials_of(fed / "PA" / "intermediate", Role.TRADER, "trader1")) == 1


def test_check_client_accepts_nodes_administrators_and_traders(fed: Path) -> None:
    assert check_client(cert(fed / "PA" / "tls.pem"), ca(fed), crls(fed)) == Identity(
        Role.REGISTRY, "PA"
    )
    assert check_client([cert(fed / "EPA" / "tls.pem")], ca(fed)) == Identity(Role.OVERSIGHT, "EPA")
    admin = identity_of_peer_chain(
        (fed / "PA/administrators/admin/chain.pem").read_bytes(), ca(fed), crls(fed)
    )
    assert admin == Identity(Role.ADMINISTRATOR, "PA", "admin")
    # gRPC's auth context: the leaf in one property, the intermediate in another, any order,
    # and a client may send the root too.
    trader = fed / "NY/traders/trader1"
    pieces = (
        (fed / "ca.pem").read_bytes()
        + (fed / "NY/intermediate/intermediate.pem").read_bytes()
        + (trader / "tls.pem").read_bytes()
        + (trader / "chain.pem").read_bytes()
    )
    assert identity_of_peer_chain(pieces, ca(fed), crls(fed)) == Identity(
        Role.TRADER, "NY", "trader1"
    )


def test_a_pa_intermediate_cannot_mint_a_ny_trader(fed: Path) -> None:
    pa = RegistryAuthority.load(fed / "PA" / "intermediate")
    with pytest.raises(ValueError, match="cannot issue for NY"):
        pa.issue(
            Identity(Role.TRADER, "NY", "mallory"),
            ec.generate_private_key(ec.SECP256R1()).public_key(),
        )
    # Made by hand with PA's key, inside PA's name constraint so TLS would let it through:
    minted = forge(pa.key, pa.certificate.subject, ["urn:regfed:trader:NY:mallory"])
    chain = pem_cert(minted) + pem_cert(pa.certificate)
    assert refused(chain, fed) == "WRONG_REGISTRY_INTERMEDIATE"


def test_every_refusal_has_its_code(fed: Path) -> None:
    pa = RegistryAuthority.load(fed / "PA" / "intermediate")
    intermediate = pem_cert(pa.certificate)
    authority = Authority.load(fed)

    assert refused(b"not a certificate", fed) == "MALFORMED_CHAIN"
    two_leaves = (fed / "PA/traders/trader1/chain.pem").read_bytes() + (
        fed / "PA/administrators/admin/tls.pem"
    ).read_bytes()
    assert refused(two_leaves, fed) == "MALFORMED_CHAIN"

    assert refused(intermediate, fed) == "NOT_A_CLIENT_CERTIFICATE"
    server_only = forge(
        pa.key,
        pa.certificate.subject,
        ["urn:regfed:trader:PA:eve"],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    assert refused(pem_cert(server_only) + intermediate, fed) == "NOT_A_CLIENT_CERTIFICATE"

    no_san = forge(pa.key, pa.certificate.subject, [])
    assert refused(pem_cert(no_san) + intermediate, fed) == "NO_IDENTITY"
    two = forge(
        pa.key, pa.certificate.subject, ["urn:regfed:trader:PA:a", "urn:regfed:trader:PA:b"]
    )
    assert refused(pem_cert(two) + intermediate, fed) == "NO_IDENTITY"
    nobody = forge(pa.key, pa.certificate.subject, ["urn:regfed:trader:PA"])
    assert refused(pem_cert(nobody) + intermediate, fed) == "NO_IDENTITY"

    # Another federation's CA, and a trader without the intermediate that signed it.
    stranger = Authority.create()
    foreign = RegistryAuthority.create(stranger, "PA")
    outsider = foreign.issue(
        Identity(Role.TRADER, "PA", "eve"), ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    assert refused(pem_cert(outsider) + pem_cert(foreign.certificate), fed) == (
        "NOT_FROM_FEDERATION_CA"
    )
    assert refused((fed / "PA/traders/trader1/tls.pem").read_bytes(), fed) == (
        "NOT_FROM_FEDERATION_CA"
    )
    # An intermediate that made its own sub-CA: path length and TLS both forbid it.
    sub_ca = forge(pa.key, pa.certificate.subject, [], ca=True)
    assert refused(pem_cert(sub_ca), fed) == "NOT_A_CLIENT_CERTIFICATE"

    # A registry node certificate minted by an intermediate; a trader's straight from the CA.
    fake_node = forge(pa.key, pa.certificate.subject, ["urn:regfed:registry:PA"])
    assert refused(pem_cert(fake_node) + intermediate, fed) == "WRONG_ISSUER"
    direct = authority.issue(
        Identity(Role.TRADER, "PA", "eve"), ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    assert refused(pem_cert(direct), fed) == "WRONG_ISSUER"

    chain = (fed / "PA/traders/trader1/chain.pem").read_bytes()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert refused(chain, fed, now=later) == "EXPIRED"
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    assert refused(chain, fed, now=earlier) == "EXPIRED"
    short = forge(pa.key, pa.certificate.subject, ["urn:regfed:trader:PA:eve"], days=1)
    assert refused(pem_cert(short) + intermediate, fed, now=later - dt.timedelta(days=398)) == (
        "EXPIRED"
    )


def test_a_revoked_trader_is_refused_and_only_its_issuer_can_revoke(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    init_federation(fed, ["PA", "NY"], "EPA")
    pa_folder = fed / "PA" / "intermediate"
    bob = issue_person(pa_folder, Role.TRADER, "bob")
    chain = bob.chain.read_bytes()
    assert identity_of_peer_chain(chain, ca(fed), crls(fed)).person == "bob"

    # NY's intermediate lists bob's serial: not its certificate, so it does not count.
    revoke(fed / "NY" / "intermediate", [bob.serial])
    assert identity_of_peer_chain(chain, ca(fed), crls(fed)).person == "bob"
    # Neither does a list forged under PA's name with another key.
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(RegistryAuthority.load(pa_folder).certificate.subject)
        .last_update(dt.datetime.now(dt.UTC))
        .next_update(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(bob.serial)
            .revocation_date(dt.datetime.now(dt.UTC))
            .build()
        )
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    assert identity_of_peer_chain(chain, ca(fed), [*crls(fed), forged]).person == "bob"

    before = load_crl(pa_folder / "crl.pem")
    revoke(pa_folder, serials_of(pa_folder, Role.TRADER, "bob"))
    assert refused(chain, fed) == "REVOKED"
    # An older list (bob not yet on it) does not bring him back: revocations are unioned.
    assert refused(chain, fed, lists=[before, *crls(fed)]) == "REVOKED"
    # The others of PA are untouched; openssl agrees with the list.
    trader1 = (fed / "PA/traders/trader1/chain.pem").read_bytes()
    assert identity_of_peer_chain(trader1, ca(fed), crls(fed)).person == "trader1"
    result = openssl_verify(
        fed, bob.certificate, "-crl_check", "-CRLfile", str(pa_folder / "crl.pem")
    )
    assert result.returncode != 0 and "revoked" in (result.stdout + result.stderr).lower()

    # Revoking again keeps one entry; the list number goes up each time.
    again = revoke(pa_folder, [bob.serial])
    assert len(again) == 1
    number = again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == 3


def test_an_intermediate_refuses_to_issue_what_is_not_a_person(fed: Path) -> None:
    pa = RegistryAuthority.load(fed / "PA" / "intermediate")
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ValueError):
        pa.issue(Identity(Role.REGISTRY, "PA"), key)
    with pytest.raises(ValueError):
        pa.issue(Identity(Role.TRADER, "PA"), key)
    with pytest.raises(FileExistsError):
        issue_person(fed / "PA" / "intermediate", Role.TRADER, "trader1")
