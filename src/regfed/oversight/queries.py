"""The oversight node's ``FederationQuery`` service: a view's rows summed over every registry.

It asks every registry of the directory (suspended ones too, as reconciliation does) at once,
each over its own mutual-TLS channel with the oversight certificate, and sums their answers. A
registry that does not answer in time, refuses, or answers something malformed is *missing*: the
answer names it and why, and never passes a partial total off as a whole one (the CLI warns and
exits non-zero). Who may ask: the oversight node's own certificate and registry administrators
(federation-wide aggregates, no account detail); traders and registry nodes may not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

import grpc

from regfed.certs.directory import Directory
from regfed.certs.identity import Role
from regfed.gateway._generated.query.v1 import query_pb2 as pb
from regfed.gateway._generated.query.v1 import query_pb2_grpc as pb_grpc
from regfed.gateway.errors import GatewayError
from regfed.gateway.query_service import parts_of, query_of, request_of
from regfed.gateway.reconcile_service import guarded_stream
from regfed.gateway.transport import CODE_KEY, MAX_MESSAGE_BYTES, Callers, Context, _Timed
from regfed.reconciliation.views import InvalidQuery, Keys, Query, Values

from .reconciler import Target, targets_of

FEDERATION_QUERY_SERVICE = "regfed.query.v1.FederationQuery"
#: How long one registry may take to send its whole answer once connected.
ANSWER_TIMEOUT_S = 120.0


class RegistryAnswerError(Exception):
    """A registry's answer that cannot be used: it is reported missing with this reason."""


async def _ask(
    target: Target,
    credentials: grpc.ChannelCredentials,
    query: Query,
    connect_timeout: float,
) -> list[tuple[Keys, Values]]:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    async with grpc.aio.secure_channel(target.endpoint, credentials, options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), connect_timeout)
        except TimeoutError:
            raise RegistryAnswerError(
                f"UNREACHABLE: no connection to {target.endpoint} within {connect_timeout:g} s"
            ) from None
        stub = pb_grpc.RegistryQueryStub(channel)
        rows: list[tuple[Keys, Values]] = []
        columns: tuple[Keys, tuple[str, ...]] | None = None
        ended = False
        try:
            async for part in stub.Query(request_of(query), timeout=ANSWER_TIMEOUT_S):
                if ended:
                    raise RegistryAnswerError("MALFORMED: parts after the last one")
                if columns is None:
                    columns = (tuple(part.key_columns), tuple(part.value_columns))
                    wanted = (query.group, query.view.values)
                    if columns != wanted:
                        raise RegistryAnswerError(
                            f"MALFORMED: columns {columns} where {wanted} were asked"
                        )
                for row in part.rows:
                    rows.append((tuple(row.keys), tuple(row.values)))
                if part.last:
                    ended = True
                    if list(part.registries) != [target.code]:
                        raise RegistryAnswerError(
                            f"MALFORMED: an answer for {list(part.registries)}, not {target.code}"
                        )
        except grpc.aio.AioRpcError as error:
            code = str(dict(error.trailing_metadata() or ()).get(CODE_KEY, error.code().name))
            details = str(error.details() or "")
            why = details if details.startswith(code) else f"{code}: {details}"
            raise RegistryAnswerError(why) from None
        if not ended:
            raise RegistryAnswerError("MALFORMED: the answer ended without its last part")
        return rows


async def federation_table(
    query: Query,
    targets: list[Target],
    credentials: grpc.ChannelCredentials,
    connect_timeout: float,
) -> tuple[Any, list[str], list[tuple[str, str]]]:
    """(summed table, registries included, missing (registry, why)) for ``query``."""
    answers = await asyncio.gather(
        *(_ask(t, credentials, query, connect_timeout) for t in targets), return_exceptions=True
    )
    rows: list[tuple[Keys, Values]] = []
    included: list[str] = []
    missing: list[tuple[str, str]] = []
    for target, answer in zip(targets, answers, strict=True):
        if isinstance(answer, RegistryAnswerError):
            missing.append((target.code, str(answer)))
            continue
        if isinstance(answer, BaseException):
            missing.append((target.code, f"UNAVAILABLE: {type(answer).__name__}: {answer}"))
            continue
        included.append(target.code)
        rows.extend(answer)
    try:
        table = query.aggregate(rows, query.group)
    except InvalidQuery as error:  # a row of the wrong shape from someone: name no one, refuse
        raise GatewayError("INVALID_REQUEST", f"a registry's rows do not fit: {error}") from None
    return table, sorted(included), sorted(missing)


class FederationQueryService(_Timed, pb_grpc.FederationQueryServicer):
    SERVICE = "federation_query"

    def __init__(
        self,
        code: str,
        directory: Callable[[], Directory],
        credentials: grpc.ChannelCredentials,
        callers: Callers,
        connect_timeout: float,
    ) -> None:
        self.code = code
        self.directory = directory
        self.credentials = credentials
        self.callers = callers
        self.connect_timeout = connect_timeout

    def _check_caller(self, context: Context) -> None:
        identity = self.callers.identify(context)
        own = identity.role is Role.OVERSIGHT and identity.registry == self.code
        if not own and identity.role is not Role.ADMINISTRATOR:
            raise GatewayError(
                "WRONG_ROLE",
                "federation figures are for the oversight node and registry administrators; "
                f"a {identity.registry} {identity.role.value} certificate may not ask",
            )

    @guarded_stream
    async def Query(  # noqa: N802 - the generated servicer's names
        self, request: pb.QueryRequest, context: Context
    ) -> AsyncGenerator[pb.QueryPart, None]:
        self._check_caller(context)
        query = query_of(request)
        targets = targets_of(await asyncio.to_thread(self.directory))
        table, included, missing = await federation_table(
            query, targets, self.credentials, self.connect_timeout
        )
        for part in parts_of(table, registries=included, missing=missing):
            yield part
