"""The node's ``RegistryQuery`` service: this registry's rows of an oversight view, for the
oversight node's certificate only (as the Reconciliation service: anyone else is refused
WRONG_ROLE and nothing is read). Read-only by construction: it opens a read transaction and
nothing else. The read runs on a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from regfed.node.domain.errors import InvalidArgument
from regfed.node.ledger import utc_now
from regfed.reconciliation.views import InvalidQuery, Query, Table

from ._generated.query.v1 import query_pb2 as pb
from ._generated.query.v1 import query_pb2_grpc as pb_grpc
from .query_source import base_rows
from .reconcile_service import check_reconciler, guarded_stream
from .service import Gateway
from .transport import Callers, Context, _Timed

REGISTRY_QUERY_SERVICE = "regfed.query.v1.RegistryQuery"
#: Rows per message: a row is under 200 bytes, a message at most 256 KiB.
ROWS_PER_PART = 1_000
MAX_FILTERS = 16


def query_of(request: pb.QueryRequest) -> Query:
    """The checked query a request asks (INVALID_ARGUMENT for anything unknown)."""
    try:
        return _query_of(request)
    except InvalidQuery as error:
        raise InvalidArgument(str(error), **error.details) from None


def _query_of(request: pb.QueryRequest) -> Query:
    if len(request.filters) > MAX_FILTERS:
        raise InvalidQuery(f"at most {MAX_FILTERS} filters, got {len(request.filters)}")
    filters: dict[str, list[str]] = {}
    for f in request.filters:
        if f.key in filters:
            raise InvalidQuery(f"two filters on {f.key}: give one with several values")
        filters[f.key] = list(f.values)
    return Query.parse(request.view, filters, list(request.by))


def request_of(query: Query) -> pb.QueryRequest:
    return pb.QueryRequest(
        view=query.view.name,
        filters=[pb.Filter(key=k, values=list(v)) for k, v in query.filters.items()],
        by=list(query.by),
    )


def parts_of(
    table: Table,
    *,
    registries: Sequence[str],
    missing: Sequence[tuple[str, str]] = (),
    rows_per_part: int = ROWS_PER_PART,
) -> Iterator[pb.QueryPart]:
    """A table as query parts: columns on the first, missing registries on the last."""
    rows = table.rows()
    first = True
    for i in range(0, max(len(rows), 1), rows_per_part):
        chunk = rows[i : i + rows_per_part]
        last = i + rows_per_part >= len(rows)
        part = pb.QueryPart(rows=[pb.Row(keys=list(k), values=list(v)) for k, v in chunk])
        if first:
            part.key_columns.extend(table.keys)
            part.value_columns.extend(table.values)
            first = False
        if last:
            part.last = True
            part.registries.extend(registries)
            part.missing.extend(pb.Missing(registry=r, reason=why) for r, why in missing)
        yield part


class RegistryQueryService(_Timed, pb_grpc.RegistryQueryServicer):
    SERVICE = "query"

    def __init__(self, gateway: Gateway, callers: Callers) -> None:
        self.gateway = gateway
        self.callers = callers
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="regfed-query")

    def _table(self, query: Query) -> Table:
        gateway = self.gateway
        rows = base_rows(
            gateway.ledger.store,
            query.view,
            registry=gateway.me,
            programs=gateway.ledger.programs,
            now=utc_now(),
        )
        return query.aggregate(rows)

    @guarded_stream
    async def Query(  # noqa: N802 - the generated servicer's names
        self, request: pb.QueryRequest, context: Context
    ) -> AsyncGenerator[pb.QueryPart, None]:
        check_reconciler(
            self.callers.identify(context), self.gateway.directory, "for oversight figures"
        )
        query = query_of(request)
        loop = asyncio.get_running_loop()
        table = await loop.run_in_executor(self.executor, self._table, query)
        for part in parts_of(table, registries=[self.gateway.me]):
            yield part

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


__all__ = [
    "REGISTRY_QUERY_SERVICE",
    "RegistryQueryService",
    "parts_of",
    "query_of",
    "request_of",
]
