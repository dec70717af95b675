"""The oversight node's API for the CLI and tests: run reconciliation now, list and show runs,
record a resolution. Every result is verified against the oversight member's key pinned in
the directory before it is believed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

from regfed.certs.directory import Member
from regfed.certs.documents import open_document
from regfed.certs.identity import Role
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2, reconciliation_pb2_grpc
from regfed.gateway.daemon import load_directory
from regfed.gateway.probe import probe_address, server_name
from regfed.gateway.transport import channel_credentials
from regfed.gateway.verdicts import document_of, oversight_member
from regfed.oversight.config import OversightConfig

from .client import TransferFailed, refusal
from .federation import Federation

#: (stage, registry, done, total)
ProgressCallback = Callable[[str, str, int, int], None]


class OversightClient:
    """A client of the oversight node's API. From a local federation (``federation.json``:
    the oversight credential by default, or a registry's administrator or node credential to
    read runs), or on the oversight host from its own configuration (:meth:`from_config`)."""

    def __init__(
        self,
        federation: Federation,
        role: Role = Role.OVERSIGHT,
        registry: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        member = oversight_member(federation.directory())
        if member is None:
            raise ValueError(f"the directory of {federation.file} lists no oversight node")
        chain, key = federation.credential(registry or federation.registries[0], role)
        credentials = channel_credentials(
            federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes()
        )
        self._open(member, member.endpoint, credentials, [], timeout)

    @classmethod
    def from_config(cls, config: OversightConfig, timeout: float = 30.0) -> OversightClient:
        """As the oversight node itself (its certificate), at its own listen address."""
        member = oversight_member(load_directory(config))
        if member is None or member.code != config.code:
            raise ValueError(f"the directory {config.directory} does not list {config.code}")
        ca, cert, key = (p.read_bytes() for p in (config.ca, config.certificate, config.key))
        name = server_name(cert)
        options = [] if name is None else [("grpc.ssl_target_name_override", name)]
        client = cls.__new__(cls)
        client._open(
            member, probe_address(config), channel_credentials(ca, cert, key), options, timeout
        )
        return client

    def _open(
        self,
        member: Member,
        address: str,
        credentials: grpc.ChannelCredentials,
        options: list[tuple[str, Any]],
        timeout: float,
    ) -> None:
        self.member = member
        self.timeout = timeout
        options = [*options, ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self.channel = grpc.secure_channel(address, credentials, options)
        self.stub = reconciliation_pb2_grpc.OversightStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> OversightClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _verified(self, reply: reconciliation_pb2.SignedDocument) -> dict[str, Any]:
        return open_document(document_of(reply), self.member)

    def reconcile(self, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Run now; returns the verified result document."""
        try:
            for event in self.stub.Reconcile(reconciliation_pb2.ReconcileRequest()):
                if event.HasField("progress"):
                    p = event.progress
                    if progress is not None:
                        progress(p.stage, p.registry, p.done, p.total)
                elif event.HasField("result"):
                    return self._verified(event.result)
        except grpc.RpcError as error:
            raise refusal(error) from None
        raise TransferFailed("UNAVAILABLE", "NO_RESULT", "the run ended without a result")

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        reply = self._call(self.stub.ListRuns, reconciliation_pb2.ListRunsRequest(limit=limit))
        return [json.loads(r) for r in reply.runs]

    def show(self, run: str) -> dict[str, Any]:
        return self._verified(
            self._call(self.stub.GetRun, reconciliation_pb2.GetRunRequest(run=run))
        )

    def resolve(self, run_id: str, resolved_by: str, note: str) -> dict[str, Any]:
        request = reconciliation_pb2.ResolveRequest(
            run_id=run_id, resolved_by=resolved_by, note=note
        )
        return self._verified(self._call(self.stub.Resolve, request))

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise refusal(error) from None
