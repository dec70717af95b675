"""The production path to membership: no one holds another state's private keys.

A state runs :func:`make_request` in its own folder. That makes its node's TLS key and Ed25519
message-signing key (and, for a registry, its intermediate CA's key), which never leave the
folder, plus what it sends to the federation authority:

- ``tls.csr``: a certificate request for exactly one identity, ``urn:regfed:registry:<CODE>``
  (or ``oversight``);
- ``intermediate.csr``: a request for the registry's intermediate CA (registries only);
- ``request.json``: the membership request: code, role, endpoint, the signing public key and the
  digests of both CSRs, signed with the signing key itself, which proves the state holds it.

The authority runs :func:`sign_request` on those public files: it checks every signature and that
the node CSR asks for exactly one regfed node identity (never a trader's, an administrator's or
two identities), issues the node and intermediate certificates and publishes a new directory
version with the member in it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from .authority import Authority, pem_cert, pem_key, write_private
from .directory import Directory, Member, MemberStatus
from .identity import Identity, Role
from .intermediate import SERVES, intermediate_certificate, registry_name
from .publish import publish, with_member

REQUEST_FILE = "request.json"
NODE_CSR = "tls.csr"
INTERMEDIATE_CSR = "intermediate.csr"
NODE_ROLES = (Role.REGISTRY, Role.OVERSIGHT)

CODES = (
    "REQUEST_MALFORMED",
    "REQUEST_BAD_SIGNATURE",
    "CSR_BAD_SIGNATURE",
    "CSR_WRONG_KEY",
    "CSR_IDENTITY",
    "CSR_MISMATCH",
)


class RequestRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"endpoint {endpoint!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _csr(key: ec.EllipticCurvePrivateKey, subject: x509.Name, uri: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def make_request(
    folder: Path, registry: str, endpoint: str, role: Role = Role.REGISTRY
) -> dict[str, Any]:
    """Keys, CSRs and the signed membership request for one state, all under ``folder``."""
    if role not in NODE_ROLES:
        raise ValueError(f"a membership request is for a registry or oversight node, not {role}")
    identity = Identity.parse(Identity(role, registry).uri)
    split_endpoint(endpoint)
    if (folder / "tls.key").exists():
        raise FileExistsError(f"{folder} already holds a node key; request from a fresh folder")
    folder.mkdir(parents=True, exist_ok=True)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    write_private(folder / "tls.key", pem_key(tls_key))
    signing = ed25519.Ed25519PrivateKey.generate()
    write_private(folder / "signing.key", pem_key(signing))
    public = signing.public_key()
    (folder / "signing.pub").write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regfed federation"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{role.value} {registry}"),
        ]
    )
    node_csr = _csr(tls_key, subject, identity.uri)
    (folder / NODE_CSR).write_bytes(node_csr)
    intermediate_digest = None
    if role is Role.REGISTRY:
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        write_private(folder / "intermediate" / "intermediate.key", pem_key(intermediate_key))
        intermediate_csr = _csr(
            intermediate_key, registry_name(registry, f"{registry} registry CA"), SERVES + registry
        )
        (folder / INTERMEDIATE_CSR).write_bytes(intermediate_csr)
        intermediate_digest = _digest(intermediate_csr)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = {
        "registry": registry,
        "role": role.value,
        "endpoint": endpoint,
        "signing_key": base64.b64encode(raw).decode(),
        "csr_sha256": _digest(node_csr),
        "intermediate_csr_sha256": intermediate_digest,
    }
    signature = base64.b64encode(signing.sign(_canonical(body))).decode()
    (folder / REQUEST_FILE).write_text(
        json.dumps({"request": body, "signature": signature}, indent=2) + "\n"
    )
    return {
        "folder": str(folder),
        "identity": identity.uri,
        "endpoint": endpoint,
        "send": [
            str(folder / name)
            for name in (REQUEST_FILE, NODE_CSR, INTERMEDIATE_CSR)
            if (folder / name).exists()
        ],
        "keep": [
            str(p)
            for p in (
                folder / "tls.key",
                folder / "signing.key",
                folder / "intermediate" / "intermediate.key",
            )
            if p.exists()
        ],
    }


@dataclass(frozen=True)
class MembershipRequest:
    registry: str
    role: Role
    endpoint: str
    signing_key: str
    csr_sha256: str
    intermediate_csr_sha256: str | None

    @property
    def identity(self) -> Identity:
        return Identity(self.role, self.registry)


def read_request(folder: Path) -> MembershipRequest:
    """The membership request in ``folder``, its Ed25519 signature checked."""
    try:
        signed = json.loads((folder / REQUEST_FILE).read_text())
        body = signed["request"]
        request = MembershipRequest(
            registry=str(body["registry"]),
            role=Role(body["role"]),
            endpoint=str(body["endpoint"]),
            signing_key=str(body["signing_key"]),
            csr_sha256=str(body["csr_sha256"]),
            intermediate_csr_sha256=body.get("intermediate_csr_sha256"),
        )
        public = ed25519.Ed25519PublicKey.from_public_bytes(
            base64.b64decode(request.signing_key, validate=True)
        )
        signature = base64.b64decode(signed["signature"], validate=True)
        split_endpoint(request.endpoint)
        Identity.parse(request.identity.uri)
    except FileNotFoundError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise RequestRefused(
            "REQUEST_MALFORMED", f"{folder / REQUEST_FILE} is not a membership request: {error}"
        ) from None
    if request.role not in NODE_ROLES:
        raise RequestRefused(
            "CSR_IDENTITY", f"membership is for registry and oversight nodes, not {request.role}"
        )
    try:
        public.verify(signature, _canonical(body))
    except InvalidSignature:
        raise RequestRefused(
            "REQUEST_BAD_SIGNATURE", "the request is not signed by the signing key it registers"
        ) from None
    return request


def _load_csr(path: Path, digest: str | None) -> x509.CertificateSigningRequest:
    data = path.read_bytes()
    if digest != _digest(data):
        raise RequestRefused("CSR_MISMATCH", f"{path.name} is not the CSR the request names")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as error:
        raise RequestRefused("REQUEST_MALFORMED", f"{path.name}: {error}") from None
    if not csr.is_signature_valid:
        raise RequestRefused("CSR_BAD_SIGNATURE", f"{path.name} is not signed by its own key")
    return csr


def _p256(csr: x509.CertificateSigningRequest, name: str) -> ec.EllipticCurvePublicKey:
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise RequestRefused("CSR_WRONG_KEY", f"{name} must carry an ECDSA P-256 key")
    return key


def _only_uri(csr: x509.CertificateSigningRequest, name: str) -> str:
    """The one name a CSR asks for: a single URI and nothing else (host names come from the
    endpoint the authority approves, not from the CSR)."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise RequestRefused("CSR_IDENTITY", f"{name} asks for no identity") from None
    names = list(san)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(names) != 1 or len(uris) != 1:
        raise RequestRefused(
            "CSR_IDENTITY",
            f"{name} must ask for exactly one regfed identity, asks for "
            f"{[getattr(n, 'value', n) for n in names]}",
        )
    return uris[0]


def check_node_csr(
    csr: x509.CertificateSigningRequest, request: MembershipRequest
) -> ec.EllipticCurvePublicKey:
    uri = _only_uri(csr, NODE_CSR)
    try:
        identity = Identity.parse(uri)
    except ValueError:
        raise RequestRefused("CSR_IDENTITY", f"{uri!r} is not a regfed identity") from None
    if identity.role not in NODE_ROLES or identity.person:
        raise RequestRefused(
            "CSR_IDENTITY",
            f"the authority signs registry and oversight node certificates only, not {uri}; "
            "traders and administrators get theirs from their registry's intermediate",
        )
    if identity != request.identity:
        raise RequestRefused(
            "CSR_MISMATCH", f"the CSR asks for {uri}, the request is for {request.identity.uri}"
        )
    return _p256(csr, NODE_CSR)


def check_intermediate_csr(
    csr: x509.CertificateSigningRequest, request: MembershipRequest
) -> ec.EllipticCurvePublicKey:
    uri = _only_uri(csr, INTERMEDIATE_CSR)
    if uri != SERVES + request.registry:
        raise RequestRefused(
            "CSR_MISMATCH", f"the intermediate CSR asks for {uri}, not {SERVES}{request.registry}"
        )
    return _p256(csr, INTERMEDIATE_CSR)


def sign_request(
    request_folder: Path, authority_folder: Path, out: Path | None = None, *, readmit: bool = False
) -> dict[str, Any]:
    """Certificates for a checked request, and a new directory version with the member in it.

    Reads only the public files (``request.json`` and the CSRs); writes ``tls.pem``, ``ca.pem``
    and ``intermediate/intermediate.pem`` to ``out`` (default: the request folder). A removed
    member is admitted again only with ``readmit``.
    """
    authority = Authority.load(authority_folder)
    request = read_request(request_folder)
    node_key = check_node_csr(_load_csr(request_folder / NODE_CSR, request.csr_sha256), request)
    intermediate_key = None
    if request.role is Role.REGISTRY:
        if request.intermediate_csr_sha256 is None:
            raise RequestRefused("REQUEST_MALFORMED", "a registry must request its intermediate")
        intermediate_key = check_intermediate_csr(
            _load_csr(request_folder / INTERMEDIATE_CSR, request.intermediate_csr_sha256),
            request,
        )
    host, _port = split_endpoint(request.endpoint)
    certificate = authority.issue(request.identity, node_key, hosts=(host,))
    member = Member(
        code=request.registry,
        role=request.role,
        endpoint=request.endpoint,
        certificate_pem=pem_cert(certificate).decode(),
        signing_key=request.signing_key,
        status=MemberStatus.ACTIVE,
    )

    def add(directory: Directory) -> Directory:
        return with_member(directory, member, readmit=readmit)

    intermediate = (
        None
        if intermediate_key is None
        else intermediate_certificate(authority, request.registry, intermediate_key)
    )
    # Everything is checked and signed before the directory changes: a refusal publishes nothing.
    directory = publish(authority_folder, add)
    out = out or request_folder
    out.mkdir(parents=True, exist_ok=True)
    (out / "tls.pem").write_bytes(pem_cert(certificate))
    (out / "ca.pem").write_bytes(pem_cert(authority.certificate))
    written = [out / "tls.pem", out / "ca.pem"]
    if intermediate is not None:
        (out / "intermediate").mkdir(exist_ok=True)
        (out / "intermediate" / "intermediate.pem").write_bytes(pem_cert(intermediate))
        written.append(out / "intermediate" / "intermediate.pem")
    published = directory.member(request.registry)
    assert published is not None
    return {
        "ok": True,
        "identity": request.identity.uri,
        "endpoint": request.endpoint,
        "status": published.status.value,
        "key_id": published.key_id,
        "directory": str(authority_folder / "directory.json"),
        "version": directory.version,
        "written": [str(p) for p in written],
    }
