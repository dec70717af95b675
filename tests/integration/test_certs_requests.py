"""The production path: each state makes its own keys and request, the authority signs from the
public files alone and publishes a directory whose version only goes up."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regfed.certs.authority import Authority, load_signing_key
from regfed.certs.directory import Directory, DirectoryError, DirectoryState, MemberStatus, accept
from regfed.certs.identity import Identity, Role
from regfed.certs.intermediate import issue_person
from regfed.certs.local import create_authority
from regfed.certs.publish import current, set_status
from regfed.certs.requests import (
    INTERMEDIATE_CSR,
    NODE_CSR,
    REQUEST_FILE,
    RequestRefused,
    make_request,
    sign_request,
)
from regfed.certs.verify import identity_of_peer_chain

PUBLIC = (REQUEST_FILE, NODE_CSR, INTERMEDIATE_CSR)


@pytest.fixture
def authority(tmp_path: Path) -> Path:
    create_authority(tmp_path / "authority")
    return tmp_path / "authority"


def inbox(state: Path, tmp_path: Path) -> Path:
    """What the authority receives: the public files only, never a private key."""
    box = tmp_path / f"inbox-{state.name}"
    box.mkdir()
    for name in PUBLIC:
        if (state / name).exists():
            shutil.copy(state / name, box / name)
    return box


def resign(state: Path, body_change: dict[str, object]) -> None:
    """Change the request and sign it again with the state's own key (a well-formed request
    that asks for something the authority must refuse)."""
    signed = json.loads((state / REQUEST_FILE).read_text())
    body = {**signed["request"], **body_change}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signature = load_signing_key(state / "signing.key").sign(canonical)
    signed = {"request": body, "signature": base64.b64encode(signature).decode()}
    (state / REQUEST_FILE).write_text(json.dumps(signed))


def replace_csr(state: Path, uris: list[str]) -> None:
    key = serialization.load_pem_private_key((state / "tls.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    data = csr.public_bytes(serialization.Encoding.PEM)
    (state / NODE_CSR).write_bytes(data)
    resign(state, {"csr_sha256": hashlib.sha256(data).hexdigest()})


def refusal(state: Path, authority: Path) -> str:
    before = current(authority).version
    with pytest.raises(RequestRefused) as caught:
        sign_request(state, authority)
    assert current(authority).version == before  # a refusal publishes nothing
    return caught.value.code


def test_a_state_joins_without_the_authority_seeing_a_private_key(
    authority: Path, tmp_path: Path
) -> None:
    pa = tmp_path / "pa"
    summary = make_request(pa, "PA", "pa.registry.example:50051")
    assert sorted(Path(p).name for p in summary["send"]) == sorted(PUBLIC)
    box = inbox(pa, tmp_path)
    signed = sign_request(box, authority)
    assert signed["version"] == 2 and signed["identity"] == "urn:regfed:registry:PA"
    # The state installs what came back beside the keys it never sent.
    shutil.copy(box / "tls.pem", pa / "tls.pem")
    shutil.copy(box / "ca.pem", pa / "ca.pem")
    shutil.copy(box / "intermediate" / "intermediate.pem", pa / "intermediate")

    node = x509.load_pem_x509_certificate((pa / "tls.pem").read_bytes())
    assert Identity.of_certificate(node) == Identity(Role.REGISTRY, "PA")
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["pa.registry.example"]
    key = serialization.load_pem_private_key((pa / "tls.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and node.public_key() == key.public_key()

    directory = current(authority)
    member = directory.member("PA")
    assert member is not None and member.endpoint == "pa.registry.example:50051"
    assert member.public_key == load_signing_key(pa / "signing.key").public_key()

    # PA's own intermediate (its key made by PA) issues PA's traders; openssl and
    # check_client accept them against the federation CA alone.
    alice = issue_person(pa / "intermediate", Role.TRADER, "alice")
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(authority / "ca.pem"),
            "-untrusted",
            str(pa / "intermediate" / "intermediate.pem"),
            str(alice.certificate),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result
    identity = identity_of_peer_chain(
        alice.chain.read_bytes(), Authority.load_certificate(authority)
    )
    assert identity == Identity(Role.TRADER, "PA", "alice")


def test_the_oversight_node_joins_without_an_intermediate(authority: Path, tmp_path: Path) -> None:
    make_request(tmp_path / "epa", "EPA", "10.0.0.9:50060", Role.OVERSIGHT)
    assert not (tmp_path / "epa" / INTERMEDIATE_CSR).exists()
    signed = sign_request(inbox(tmp_path / "epa", tmp_path), authority)
    assert signed["identity"] == "urn:regfed:oversight:EPA"
    node = x509.load_pem_x509_certificate((tmp_path / "inbox-epa" / "tls.pem").read_bytes())
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.9"]


def test_the_authority_signs_one_node_identity_and_nothing_else(
    authority: Path, tmp_path: Path
) -> None:
    state = tmp_path / "pa"
    make_request(state, "PA", "127.0.0.1:50051")
    original = {name: (state / name).read_bytes() for name in PUBLIC}

    def reset() -> None:
        for name, data in original.items():
            (state / name).write_bytes(data)

    replace_csr(state, ["urn:regfed:registry:PA", "urn:regfed:registry:NY"])
    assert refusal(state, authority) == "CSR_IDENTITY"
    replace_csr(state, ["urn:regfed:trader:PA:alice"])
    assert refusal(state, authority) == "CSR_IDENTITY"
    replace_csr(state, ["urn:regfed:administrator:PA"])
    assert refusal(state, authority) == "CSR_IDENTITY"
    replace_csr(state, ["urn:regfed:registry:NY"])
    assert refusal(state, authority) == "CSR_MISMATCH"
    replace_csr(state, [])
    assert refusal(state, authority) == "CSR_IDENTITY"
    reset()

    # The request edited in transit (a new endpoint) no longer carries the state's signature.
    signed = json.loads((state / REQUEST_FILE).read_text())
    signed["request"]["endpoint"] = "evil.example:443"
    (state / REQUEST_FILE).write_text(json.dumps(signed))
    assert refusal(state, authority) == "REQUEST_BAD_SIGNATURE"
    reset()
    # A CSR swapped for another state's.
    make_request(tmp_path / "other", "PA", "127.0.0.1:50051")
    shutil.copy(tmp_path / "other" / NODE_CSR, state / NODE_CSR)
    assert refusal(state, authority) == "CSR_MISMATCH"
    reset()
    # Trader role asked for in the request itself.
    resign(state, {"role": "trader"})
    assert refusal(state, authority) == "CSR_IDENTITY"
    reset()
    (state / REQUEST_FILE).write_text("{}")
    assert refusal(state, authority) == "REQUEST_MALFORMED"
    reset()
    assert sign_request(state, authority)["version"] == 2


def test_directory_versions_only_go_up_and_statuses_are_published(
    authority: Path, tmp_path: Path
) -> None:
    ca = Authority.load_certificate(authority)
    for code, port in (("PA", 50051), ("NY", 50052)):
        make_request(tmp_path / code, code, f"127.0.0.1:{port}")
        sign_request(tmp_path / code, authority)
    assert current(authority).version == 3
    v3 = json.loads((authority / "directory.json").read_text())

    suspended = set_status(authority, "NY", MemberStatus.SUSPENDED)
    assert suspended.version == 4
    assert current(authority).member("NY").status is MemberStatus.SUSPENDED  # type: ignore[union-attr]
    # Re-keying a suspended member keeps it suspended.
    shutil.rmtree(tmp_path / "NY")
    make_request(tmp_path / "NY", "NY", "127.0.0.1:50062")
    assert sign_request(tmp_path / "NY", authority)["status"] == "suspended"
    reinstated = set_status(authority, "NY", MemberStatus.ACTIVE)
    assert reinstated.member("NY").status is MemberStatus.ACTIVE  # type: ignore[union-attr]
    removed = set_status(authority, "PA", MemberStatus.REMOVED)
    assert removed.version == 7
    assert removed.member("PA").status is MemberStatus.REMOVED  # type: ignore[union-attr]
    assert sorted(p.name for p in (authority / "history").iterdir())[-1] == (
        "directory-v000007.json"
    )

    # A node that has accepted v7 refuses the replayed v3, where PA was still active.
    state = DirectoryState(tmp_path / "highest-version")
    assert state.highest() == 0
    latest = json.loads((authority / "directory.json").read_text())
    assert state.accept(latest, ca).version == 7
    assert DirectoryState(tmp_path / "highest-version").highest() == 7
    with pytest.raises(DirectoryError) as caught:
        state.accept(v3, ca)
    assert caught.value.code == "DIRECTORY_STALE"
    assert state.highest() == 7
    assert accept(latest, ca, highest_seen=7).version == 7
    with pytest.raises(DirectoryError):
        accept(v3, ca, highest_seen=7)
    # A directory not signed by the CA is refused before its version is even read.
    forged = Directory(99, ()).sign(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(DirectoryError) as bad:
        state.accept(forged, ca)
    assert bad.value.code == "DIRECTORY_BAD_SIGNATURE" and state.highest() == 7


def test_removal_is_final_unless_readmitted_with_new_keys(authority: Path, tmp_path: Path) -> None:
    make_request(tmp_path / "pa", "PA", "127.0.0.1:50051")
    sign_request(tmp_path / "pa", authority)
    set_status(authority, "PA", MemberStatus.REMOVED)
    for status in (MemberStatus.ACTIVE, MemberStatus.SUSPENDED, MemberStatus.REMOVED):
        with pytest.raises(DirectoryError) as caught:
            set_status(authority, "PA", status)
        assert caught.value.code == "MEMBER_REMOVED"
    with pytest.raises(DirectoryError) as again:
        sign_request(tmp_path / "pa", authority)
    assert again.value.code == "MEMBER_REMOVED"
    with pytest.raises(DirectoryError) as reused:
        sign_request(tmp_path / "pa", authority, readmit=True)
    assert reused.value.code == "KEY_REUSED"
    make_request(tmp_path / "pa2", "PA", "127.0.0.1:50051")
    back = sign_request(tmp_path / "pa2", authority, readmit=True)
    assert back["status"] == "active" and back["version"] == 4
    with pytest.raises(DirectoryError) as unknown:
        set_status(authority, "ZZ", MemberStatus.SUSPENDED)
    assert unknown.value.code == "UNKNOWN_MEMBER"


def test_requests_never_overwrite_keys(tmp_path: Path) -> None:
    make_request(tmp_path / "pa", "PA", "127.0.0.1:50051")
    with pytest.raises(FileExistsError):
        make_request(tmp_path / "pa", "PA", "127.0.0.1:50051")
    with pytest.raises(ValueError):
        make_request(tmp_path / "x", "PA", "no-port")
    with pytest.raises(ValueError):
        make_request(tmp_path / "y", "PA", "127.0.0.1:1", Role.TRADER)
