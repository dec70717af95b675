"""Who is on the other end of a TLS connection: the checks a gRPC port makes on a client chain.

The TLS handshake already proves the client holds the key of the leaf it presents, and (with the
federation CA as the only root) that some chain leads to that CA. What TLS cannot know is regfed's
own rules, checked here, each refusal with a stable code:

``MALFORMED_CHAIN``           not PEM certificates, or more than one end-entity certificate
``NOT_A_CLIENT_CERTIFICATE``  the end certificate is a CA, or not for TLS client authentication
``NO_IDENTITY``               no single ``urn:regfed:...`` identity (or a person role without a
                              person, or a node role with one)
``NOT_FROM_FEDERATION_CA``    the chain does not lead to the federation CA
``WRONG_ISSUER``              a node certificate from an intermediate, or a person's certificate
                              signed directly by the federation CA
``WRONG_REGISTRY_INTERMEDIATE`` the intermediate serves another registry than the leaf names
``EXPIRED``                   a certificate on the path is outside its validity period
``REVOKED``                   a certificate on the path is on its issuer's revocation list
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from .identity import Identity
from .intermediate import PERSON_ROLES, served_registry

CODES = (
    "MALFORMED_CHAIN",
    "NOT_A_CLIENT_CERTIFICATE",
    "NO_IDENTITY",
    "NOT_FROM_FEDERATION_CA",
    "WRONG_ISSUER",
    "WRONG_REGISTRY_INTERMEDIATE",
    "EXPIRED",
    "REVOKED",
)

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class CertificateRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def identity_of_peer_chain(
    pem_bytes: bytes,
    ca: x509.Certificate,
    crls: Iterable[x509.CertificateRevocationList] = (),
    *,
    now: dt.datetime | None = None,
) -> Identity:
    """:func:`check_client` on concatenated PEM, in any order, duplicates and the root allowed.

    gRPC's auth context splits what the client sent: ``x509_pem_cert`` is the leaf and
    ``x509_pem_cert_chain`` the chain (which, on a server, may or may not repeat the leaf), so
    pass both joined; this function sorts them out.
    """
    blocks = _PEM_BLOCK.findall(pem_bytes)
    if not blocks:
        raise CertificateRefused("MALFORMED_CHAIN", "no PEM certificate in the peer's chain")
    try:
        certificates = [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as error:
        raise CertificateRefused("MALFORMED_CHAIN", f"unreadable certificate: {error}") from None
    return check_client(certificates, ca, crls, now=now)


def check_client(
    chain: x509.Certificate | Sequence[x509.Certificate],
    ca: x509.Certificate,
    crls: Iterable[x509.CertificateRevocationList] = (),
    *,
    now: dt.datetime | None = None,
) -> Identity:
    """The identity a client chain proves, or :class:`CertificateRefused` with a code.

    ``chain`` is the leaf alone (a node certificate) or the leaf with its registry's
    intermediate, in any order. ``crls`` are every revocation list the caller trusts enough to
    load; only those signed by the certificate's actual issuer count, and a serial revoked in
    any of them stays revoked (an older list cannot bring a certificate back).
    """
    now = now or dt.datetime.now(dt.UTC)
    certificates = _distinct([chain] if isinstance(chain, x509.Certificate) else list(chain), ca)
    leaves = [c for c in certificates if not _is_ca(c)]
    if not leaves:
        raise CertificateRefused(
            "NOT_A_CLIENT_CERTIFICATE", "the chain holds only CA certificates, no client's"
        )
    if len(leaves) > 1:
        raise CertificateRefused("MALFORMED_CHAIN", f"{len(leaves)} end-entity certificates")
    leaf = leaves[0]
    if not _for_client_auth(leaf):
        raise CertificateRefused(
            "NOT_A_CLIENT_CERTIFICATE", "the certificate is not for TLS client authentication"
        )
    identity = _identity(leaf)
    path = _path(leaf, identity, [c for c in certificates if _is_ca(c)], ca)
    for certificate in [*path, ca]:
        _check_validity(certificate, now)
    for certificate, issuer in zip(path, [*path[1:], ca], strict=True):
        _check_revocation(certificate, issuer, crls)
    return identity


def _distinct(certificates: list[x509.Certificate], ca: x509.Certificate) -> list[x509.Certificate]:
    seen = {ca.fingerprint(hashes.SHA256())}
    out = []
    for certificate in certificates:
        fingerprint = certificate.fingerprint(hashes.SHA256())
        if fingerprint not in seen:
            seen.add(fingerprint)
            out.append(certificate)
    return out


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _for_client_auth(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction: any use (RFC 5280 4.2.1.12)
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage


def _identity(leaf: x509.Certificate) -> Identity:
    try:
        identity = Identity.of_certificate(leaf)
    except ValueError as error:
        raise CertificateRefused("NO_IDENTITY", str(error)) from None
    if identity.role in PERSON_ROLES and not identity.person:
        raise CertificateRefused("NO_IDENTITY", f"{identity.uri} names no person")
    if identity.role not in PERSON_ROLES and identity.person:
        raise CertificateRefused("NO_IDENTITY", f"{identity.uri}: a node names no person")
    return identity


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _path(
    leaf: x509.Certificate,
    identity: Identity,
    intermediates: list[x509.Certificate],
    ca: x509.Certificate,
) -> list[x509.Certificate]:
    """Leaf up to (not including) the federation CA, with regfed's rules on who signs what."""
    if _signed_by(leaf, ca):
        if identity.role in PERSON_ROLES:
            raise CertificateRefused(
                "WRONG_ISSUER",
                f"a {identity.role.value} certificate must come from its registry's "
                "intermediate, not straight from the federation CA",
            )
        return [leaf]
    issuer = next((c for c in intermediates if _signed_by(leaf, c)), None)
    if issuer is None or not _signed_by(issuer, ca):
        raise CertificateRefused(
            "NOT_FROM_FEDERATION_CA",
            f"{identity.uri} is not signed by the federation CA "
            "or by an intermediate the federation CA signed",
        )
    if issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length != 0:
        raise CertificateRefused(
            "NOT_FROM_FEDERATION_CA", "the intermediate may sign further CAs (path length not 0)"
        )
    if identity.role not in PERSON_ROLES:
        raise CertificateRefused(
            "WRONG_ISSUER",
            f"a {identity.role.value} node certificate must be signed by the federation CA "
            "directly, not by a registry's intermediate",
        )
    served = served_registry(issuer)
    if served != identity.registry:
        raise CertificateRefused(
            "WRONG_REGISTRY_INTERMEDIATE",
            f"{identity.uri} comes from the intermediate of {served or 'no registry'}",
        )
    return [leaf, issuer]


def _describe(certificate: x509.Certificate) -> str:
    if not _is_ca(certificate):
        try:
            return Identity.of_certificate(certificate).uri
        except ValueError:
            pass
    return certificate.subject.rfc4514_string()


def _check_validity(certificate: x509.Certificate, now: dt.datetime) -> None:
    if now > certificate.not_valid_after_utc:
        raise CertificateRefused(
            "EXPIRED",
            f"{_describe(certificate)} expired at {certificate.not_valid_after_utc.isoformat()}",
        )
    if now < certificate.not_valid_before_utc:
        raise CertificateRefused(
            "EXPIRED",
            f"{_describe(certificate)} is not valid before "
            f"{certificate.not_valid_before_utc.isoformat()}",
        )


def _check_revocation(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    crls: Iterable[x509.CertificateRevocationList],
) -> None:
    for crl in crls:
        # A list counts only if the certificate's own issuer signed it: another registry (or a
        # forger) must not be able to revoke, or hide revocations of, this one's people.
        if crl.issuer != issuer.subject or not _crl_signed_by(crl, issuer):
            continue
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None:
            raise CertificateRefused(
                "REVOKED",
                f"{_describe(certificate)} (serial {certificate.serial_number:x}) was revoked "
                f"at {entry.revocation_date_utc.isoformat()}",
            )


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    # regfed CAs are ECDSA; any other key type cannot have signed one of our lists.
    return isinstance(key, ec.EllipticCurvePublicKey) and crl.is_signature_valid(key)
