"""The local path to a federation's credentials (``regfed certs init``).

One federation CA (ECDSA P-256) signs a TLS certificate per registry node and for the oversight
node; each node also gets an Ed25519 message-signing key. In production no one holds another
state's private keys (the request/sign path); this module serves a local federation and tests.
Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .identity import Identity, Role

VALIDITY = dt.timedelta(days=825)
LOOPBACK = ("localhost", "127.0.0.1")


def host_name(host: str) -> x509.GeneralName:
    """An IP address SAN for a literal address, else a DNS name (what TLS clients check)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regfed federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def write_private(path: Path, data: bytes) -> None:
    """Create a private file readable by its owner only, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "regfed federation CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY * 4)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, folder: Path) -> Authority:
        key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        return cls(key, cert)

    @staticmethod
    def load_certificate(folder: Path) -> x509.Certificate:
        """The CA certificate alone: all a node (or anyone checking a signature) needs."""
        return x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ca.pem").write_bytes(pem_cert(self.certificate))
        write_private(folder / "ca.key", pem_key(self.key))

    def issue(
        self,
        identity: Identity,
        public_key: ec.EllipticCurvePublicKey,
        hosts: tuple[str, ...] = LOOPBACK,
    ) -> x509.Certificate:
        """A TLS certificate for ``identity``: client and server use, valid for ``hosts``."""
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
        names.extend(host_name(h) for h in hosts)
        return (
            x509.CertificateBuilder()
            .subject_name(
                _name(
                    f"{identity.role.value} {identity.registry}"
                    + (f" {identity.person}" if identity.person else "")
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )


@dataclass(frozen=True)
class NodeCredentials:
    identity: Identity
    folder: Path

    @property
    def tls_certificate(self) -> Path:
        return self.folder / "tls.pem"

    @property
    def tls_key(self) -> Path:
        return self.folder / "tls.key"

    @property
    def signing_key(self) -> Path:
        return self.folder / "signing.key"


def issue_node(authority: Authority, identity: Identity, folder: Path) -> NodeCredentials:
    """TLS key and certificate, and an Ed25519 message-signing key, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    cert = authority.issue(identity, tls_key.public_key())
    (folder / "tls.pem").write_bytes(pem_cert(cert))
    write_private(folder / "tls.key", pem_key(tls_key))
    signing = ed25519.Ed25519PrivateKey.generate()
    write_private(folder / "signing.key", pem_key(signing))
    (folder / "signing.pub").write_bytes(
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return NodeCredentials(identity, folder)


def load_signing_key(path: Path) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


ROLE_FOLDERS = {Role.REGISTRY: "", Role.OVERSIGHT: "oversight-"}
