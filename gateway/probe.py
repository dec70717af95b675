"""``regfed node health``: ask a running node's gRPC health service, as a container probe does.

The port requires a client certificate at the handshake, so the probe presents the node's own
(the one its configuration names): no extra credential exists just for probing. The node's
certificate names the host peers dial (e.g. ``pa``), not the loopback address a probe inside
the container uses, so the TLS server name is taken from the certificate itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cryptography import x509

from regfed.certs.requests import split_endpoint
from regfed.oversight.config import OversightConfig

from ._generated.health.v1 import health_pb2, health_pb2_grpc
from .daemon import NodeConfig
from .transport import channel_credentials

#: A listen address on every interface is probed through loopback.
ANY_HOST = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class HealthReport:
    address: str
    status: str  # SERVING, NOT_SERVING, SERVICE_UNKNOWN, or UNREACHABLE
    detail: str = ""

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"


def probe_address(config: NodeConfig | OversightConfig) -> str:
    host, port = split_endpoint(config.listen)
    host = ANY_HOST.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_name(certificate_pem: bytes) -> str | None:
    """The first DNS or IP name in the node's certificate: what TLS checks the server against."""
    leaf = x509.load_pem_x509_certificate(certificate_pem)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    names = [*san.get_values_for_type(x509.DNSName), *san.get_values_for_type(x509.IPAddress)]
    return str(names[0]) if names else None


def check_health(
    config: NodeConfig | OversightConfig,
    address: str | None = None,
    timeout: float = 5.0,
    service: str = "",
) -> HealthReport:
    address = address or probe_address(config)
    ca, cert, key = (p.read_bytes() for p in (config.ca, config.certificate, config.key))
    options = []
    name = server_name(cert)
    if name:
        options.append(("grpc.ssl_target_name_override", name))
    with grpc.secure_channel(address, channel_credentials(ca, cert, key), options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return HealthReport(address, "UNREACHABLE", f"{error.code().name}: {error.details()}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return HealthReport(address, status)
