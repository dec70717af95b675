"""A registry's own certificate authority: it issues its administrators' and traders' certificates.

The federation CA signs one intermediate per registry; the registry's administrator holds its key
and issues and revokes certificates for people without asking the federation. Three things keep
one registry's intermediate from speaking for another:

- it names the registry it serves (URI SAN ``urn:regfed:registry-ca:<CODE>``), and
  :func:`regfed.certs.verify.check_client` refuses a person certificate for any other registry;
- its path length is 0 and its extended key usage is client authentication only, so TLS stacks
  refuse a sub-CA or a server certificate under it;
- a name constraint keeps the subjects it signs under ``O=regfed federation, OU=<CODE>``.

Registry and oversight node certificates never come from an intermediate: the federation CA signs
those directly. Layout of an intermediate folder: ``intermediate.pem``, ``intermediate.key``
(0600), ``crl.pem`` (its signed revocation list) and ``issued.json`` (what it has issued, so a
person can be revoked by name).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .authority import VALIDITY, Authority, pem_cert, pem_key, write_private
from .identity import Identity, Role

SERVES = "urn:regfed:registry-ca:"
PERSON_ROLES = frozenset({Role.ADMINISTRATOR, Role.TRADER})
PERSON_FOLDERS = {Role.ADMINISTRATOR: "administrators", Role.TRADER: "traders"}
INTERMEDIATE_VALIDITY = VALIDITY * 2
PERSON_VALIDITY = dt.timedelta(days=397)
# The list is re-signed on every revocation; nodes do not refuse an old one (revocations are
# unioned across every list they load), so this only tells readers when to expect a new one.
CRL_VALIDITY = dt.timedelta(days=90)


def registry_name(registry: str, common_name: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regfed federation"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, registry),
    ]
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def served_registry(certificate: x509.Certificate) -> str | None:
    """The registry an intermediate says it serves, or None if it names none (or several)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    served = [
        uri[len(SERVES) :]
        for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(SERVES)
    ]
    if len(served) != 1 or not _valid_code(served[0]):
        return None
    return served[0]


def _valid_code(code: str) -> bool:
    try:
        Identity.parse(f"urn:regfed:registry:{code}")
    except ValueError:
        return False
    return True


def intermediate_certificate(
    authority: Authority, registry: str, public_key: ec.EllipticCurvePublicKey
) -> x509.Certificate:
    """The federation CA's signature on ``registry``'s intermediate (whoever made the key)."""
    if not _valid_code(registry):
        raise ValueError(f"{registry!r} is not a registry code (2 to 4 capital letters)")
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(registry_name(registry, f"{registry} registry CA"))
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(
            min(now + INTERMEDIATE_VALIDITY, authority.certificate.not_valid_after_utc)
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SERVES + registry)]),
            critical=False,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DirectoryName(registry_name(registry))],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_ec(authority.certificate)),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )


def _ec(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("regfed certificates carry ECDSA P-256 keys")
    return key


@dataclass(frozen=True)
class RegistryAuthority:
    """A registry's intermediate CA: its key, and its certificate from the federation CA."""

    registry: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, authority: Authority, registry: str) -> RegistryAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(registry, key, intermediate_certificate(authority, registry, key.public_key()))

    @classmethod
    def load(cls, folder: Path) -> RegistryAuthority:
        key = serialization.load_pem_private_key((folder / "intermediate.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{folder / 'intermediate.key'} is not an ECDSA key")
        cert = x509.load_pem_x509_certificate((folder / "intermediate.pem").read_bytes())
        if cert.public_key() != key.public_key():
            raise ValueError(f"{folder}: intermediate.pem is not the certificate of its key")
        registry = served_registry(cert)
        if registry is None:
            raise ValueError(f"{folder / 'intermediate.pem'} names no registry it serves")
        return cls(registry, key, cert)

    def save(self, folder: Path) -> None:
        if (folder / "intermediate.key").exists():
            raise FileExistsError(f"{folder} already holds an intermediate CA")
        folder.mkdir(parents=True, exist_ok=True)
        write_private(folder / "intermediate.key", pem_key(self.key))
        (folder / "intermediate.pem").write_bytes(pem_cert(self.certificate))
        ensure_crl(self, folder)

    def issue(self, identity: Identity, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        """A TLS client certificate for one of this registry's administrators or traders."""
        check_person(identity, self.registry)
        now = dt.datetime.now(dt.UTC)
        common_name = f"{identity.role.value} {identity.registry} {identity.person}"
        return (
            x509.CertificateBuilder()
            .subject_name(registry_name(self.registry, common_name))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + PERSON_VALIDITY, self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )


def check_person(identity: Identity, registry: str) -> None:
    if identity.role not in PERSON_ROLES:
        raise ValueError(
            f"an intermediate issues administrator and trader certificates, not {identity.role}"
        )
    if identity.registry != registry:
        raise ValueError(f"the {registry} intermediate cannot issue for {identity.registry}")
    if not identity.person:
        raise ValueError("an administrator or trader certificate must name a person")
    if Identity.parse(identity.uri) != identity:
        raise ValueError(f"{identity.person!r} is not a valid person name (letters, digits, ._@-)")


@dataclass(frozen=True)
class PersonCredentials:
    identity: Identity
    folder: Path
    serial: int

    @property
    def certificate(self) -> Path:
        return self.folder / "tls.pem"

    @property
    def key(self) -> Path:
        return self.folder / "tls.key"

    @property
    def chain(self) -> Path:
        """Leaf then intermediate: what a TLS client presents, so servers need only ca.pem."""
        return self.folder / "chain.pem"

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.identity.role.value,
            "registry": self.identity.registry,
            "person": self.identity.person,
            "identity": self.identity.uri,
            "serial": f"{self.serial:x}",
            "certificate": str(self.certificate),
            "key": str(self.key),
            "chain": str(self.chain),
        }


def person_folder(intermediate_folder: Path, role: Role, person: str) -> Path:
    """Where a person's credentials go by default: beside the intermediate, by role."""
    return intermediate_folder.parent / PERSON_FOLDERS[role] / person


def issue_person(
    intermediate_folder: Path, role: Role, person: str, out: Path | None = None
) -> PersonCredentials:
    """A new key and certificate for a person, written as ``tls.pem``, ``tls.key``, ``chain.pem``.

    Refuses to overwrite a folder that already holds a key: revoke the old certificate, then
    issue into a fresh folder (or remove the old one deliberately).
    """
    ra = RegistryAuthority.load(intermediate_folder)
    identity = Identity(role, ra.registry, person)
    check_person(identity, ra.registry)
    folder = out or person_folder(intermediate_folder, role, person)
    if (folder / "tls.key").exists():
        raise FileExistsError(f"{folder} already holds a key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ra.issue(identity, key.public_key())
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "tls.key", pem_key(key))
    (folder / "tls.pem").write_bytes(pem_cert(cert))
    (folder / "chain.pem").write_bytes(pem_cert(cert) + pem_cert(ra.certificate))
    _record(intermediate_folder, identity, cert, folder)
    ensure_crl(ra, intermediate_folder)
    return PersonCredentials(identity, folder, cert.serial_number)


def issued(intermediate_folder: Path) -> list[dict[str, Any]]:
    path = intermediate_folder / "issued.json"
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return rows


def _record(
    intermediate_folder: Path, identity: Identity, cert: x509.Certificate, folder: Path
) -> None:
    rows = issued(intermediate_folder)
    rows.append(
        {
            "serial": f"{cert.serial_number:x}",
            "role": identity.role.value,
            "person": identity.person,
            "not_after": cert.not_valid_after_utc.isoformat(),
            "folder": str(folder),
        }
    )
    _write_json(intermediate_folder / "issued.json", rows)


def _write_json(path: Path, value: Any) -> None:
    # Write then rename, so a reader never sees half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def crl_path(intermediate_folder: Path) -> Path:
    return intermediate_folder / "crl.pem"


def _current_crl(
    ra: RegistryAuthority, intermediate_folder: Path
) -> x509.CertificateRevocationList | None:
    path = crl_path(intermediate_folder)
    if not path.exists():
        return None
    crl = load_crl(path)
    # Only a list this intermediate signed may carry revocations forward.
    if not crl.is_signature_valid(ra.key.public_key()):
        raise ValueError(f"{path} is not signed by the {ra.registry} intermediate")
    return crl


def _crl_number(crl: x509.CertificateRevocationList | None) -> int:
    if crl is None:
        return 0
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def _sign_crl(
    ra: RegistryAuthority, entries: list[x509.RevokedCertificate], number: int
) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ra.certificate.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ra.key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ra.key, hashes.SHA256())


def ensure_crl(ra: RegistryAuthority, intermediate_folder: Path) -> Path:
    """An (empty) signed list, so nodes can always load one for every intermediate."""
    path = crl_path(intermediate_folder)
    if _current_crl(ra, intermediate_folder) is None:
        crl = _sign_crl(ra, [], 1)
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def revoke(
    intermediate_folder: Path,
    serials: list[int],
) -> x509.CertificateRevocationList:
    """Add ``serials`` to the intermediate's signed list (a new list number); returns the list.

    Revocation is permanent: entries already listed are kept, a serial listed twice once.
    """
    ra = RegistryAuthority.load(intermediate_folder)
    current = _current_crl(ra, intermediate_folder)
    entries = list(current) if current is not None else []
    listed = {e.serial_number for e in entries}
    now = dt.datetime.now(dt.UTC)
    for serial in serials:
        if serial in listed:
            continue
        listed.add(serial)
        entries.append(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = _sign_crl(ra, entries, _crl_number(current) + 1)
    tmp = crl_path(intermediate_folder).with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(crl_path(intermediate_folder))
    return crl


def serials_of(intermediate_folder: Path, role: Role, person: str) -> list[int]:
    """Every certificate this intermediate issued to ``person`` in ``role``."""
    return [
        int(row["serial"], 16)
        for row in issued(intermediate_folder)
        if row["role"] == role.value and row["person"] == person
    ]
