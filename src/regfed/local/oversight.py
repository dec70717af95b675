"""The oversight node's API for the CLI and tests: run reconciliation now, list and show runs,
record a resolution. Every result is verified against the oversight member's key pinned in
the directory before it is believed."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from regfed.certs.directory import Member
from regfed.certs.documents import open_document
from regfed.certs.identity import Role
from regfed.gateway._generated.query.v1 import query_pb2_grpc
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2, reconciliation_pb2_grpc
from regfed.gateway.daemon import load_directory
from regfed.gateway.probe import probe_address, server_name
from regfed.gateway.query_service import request_of
from regfed.gateway.transport import channel_credentials
from regfed.gateway.verdicts import document_of, oversight_member
from regfed.node.domain.errors import InvalidArgument
from regfed.oversight.config import OversightConfig
from regfed.reconciliation.views import InvalidQuery, Query, as_dicts

from .client import TransferFailed, refusal
from .federation import Federation

#: (stage, registry, done, total)
ProgressCallback = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class FederationAnswer:
    """A federation-wide view: its rows, and the registries missing from them (code: why)."""

    view: str
    rows: list[dict[str, str | int]]
    missing: dict[str, str]
    registries: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "missing": [{"registry": r, "reason": why} for r, why in self.missing.items()],
        }


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
        self.queries = query_pb2_grpc.FederationQueryStub(self.channel)

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

    def query(
        self,
        view: str,
        filters: Mapping[str, Sequence[str]] | None = None,
        by: Sequence[str] = (),
    ) -> FederationAnswer:
        """A view's rows across every registry, with the registries that did not answer.
        The query is checked here first, so a mistake is refused before anything is sent."""
        try:
            query = Query.parse(view, filters or {}, by)
        except InvalidQuery as error:
            raise InvalidArgument(str(error), **error.details) from None
        rows: list[tuple[tuple[str, ...], tuple[int, ...]]] = []
        keys: tuple[str, ...] = ()
        values: tuple[str, ...] = ()
        try:
            for part in self.queries.Query(request_of(query), timeout=self.timeout):
                if part.key_columns:
                    keys, values = tuple(part.key_columns), tuple(part.value_columns)
                rows.extend((tuple(r.keys), tuple(r.values)) for r in part.rows)
                if part.last:
                    return FederationAnswer(
                        view=view,
                        rows=as_dicts(keys or query.group, values or query.view.values, rows),
                        missing={m.registry: m.reason for m in part.missing},
                        registries=list(part.registries),
                    )
        except grpc.RpcError as error:
            raise refusal(error) from None
        raise TransferFailed("UNAVAILABLE", "NO_RESULT", "the answer ended without its last part")

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise refusal(error) from None
