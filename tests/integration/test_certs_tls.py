"""A real gRPC mutual-TLS handshake with the federation CA as the only root: people present
leaf + intermediate, and the server learns who they are from its auth context alone."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from regfed.certs.authority import Authority
from regfed.certs.identity import Role
from regfed.certs.intermediate import load_crl, revoke, serials_of
from regfed.certs.local import init_federation
from regfed.certs.verify import CertificateRefused, identity_of_peer_chain


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls") / "fed"
    init_federation(folder, ["PA", "NY"], "EPA")
    return folder


def who(fed: Path) -> Any:
    ca = Authority.load_certificate(fed)

    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        auth = context.auth_context()
        # What a regfed server does: the leaf and the rest of the chain, joined.
        chain = b"".join(auth.get("x509_pem_cert", []) + auth.get("x509_pem_cert_chain", []))
        crls = [load_crl(fed / code / "intermediate" / "crl.pem") for code in ("PA", "NY")]
        try:
            return identity_of_peer_chain(chain, ca, crls).uri.encode()
        except CertificateRefused as refused:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, refused.code)
            raise  # abort raises; this line is for the type checker

    return handle


@pytest.fixture(scope="module")
def port(fed: Path) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "test.Who", {"Am": grpc.unary_unary_rpc_method_handler(who(fed))}
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [((fed / "PA" / "tls.key").read_bytes(), (fed / "PA" / "tls.pem").read_bytes())],
        root_certificates=(fed / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    bound = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield bound
    server.stop(None)


def call(fed: Path, port: int, key: Path, chain: Path) -> str:
    credentials = grpc.ssl_channel_credentials(
        (fed / "ca.pem").read_bytes(), key.read_bytes(), chain.read_bytes()
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        reply: bytes = channel.unary_unary("/test.Who/Am")(b"", timeout=10)
    return reply.decode()


def status(fed: Path, port: int, key: Path, chain: Path) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(fed, port, key, chain)
    error: Any = caught.value
    return error.code(), error.details()


def test_people_and_nodes_are_identified_from_the_handshake(fed: Path, port: int) -> None:
    for person in ("PA/traders/trader1", "PA/administrators/admin", "NY/traders/trader1"):
        folder = fed / person
        role = "trader" if "traders" in person else "administrator"
        expected = f"urn:regfed:{role}:{person[:2]}:{folder.name}"
        assert call(fed, port, folder / "tls.key", folder / "chain.pem") == expected
    assert call(fed, port, fed / "NY" / "tls.key", fed / "NY" / "tls.pem") == (
        "urn:regfed:registry:NY"
    )


def test_the_handshake_needs_the_intermediate(fed: Path, port: int) -> None:
    trader = fed / "PA" / "traders" / "trader1"
    code, _ = status(fed, port, trader / "tls.key", trader / "tls.pem")
    assert code is grpc.StatusCode.UNAVAILABLE


def test_a_revoked_trader_passes_tls_but_not_the_server(fed: Path, port: int) -> None:
    inter = fed / "NY" / "intermediate"
    revoke(inter, serials_of(inter, Role.TRADER, "trader1"))
    trader = fed / "NY" / "traders" / "trader1"
    assert status(fed, port, trader / "tls.key", trader / "chain.pem") == (
        grpc.StatusCode.PERMISSION_DENIED,
        "REVOKED",
    )
