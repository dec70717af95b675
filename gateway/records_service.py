"""The node's ``PublicRecords`` service: its public records (records_source.py), streamed to
the oversight node, which publishes the reports, and to no one else.

The records are the raw facts, before any disclosure policy: account holders, serials and
prices of every program. So only the oversight member active in this node's directory may
read them, by its own certificate (the rule of the Reconciliation service); traders,
administrators and registry nodes are refused WRONG_ROLE (PERMISSION_DENIED) before anything is
read. The read runs on a thread of its own a few parts ahead of the client, as reconciliation's
streams do.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._generated.report.v1 import report_pb2 as pb
from ._generated.report.v1 import report_pb2_grpc as pb_grpc
from .reconcile_service import READ_AHEAD, check_reconciler, guarded_stream, pumped
from .records_source import records_parts
from .service import Gateway
from .transport import Callers, Context, _Timed

PUBLIC_RECORDS_SERVICE = "regfed.report.v1.PublicRecords"
#: Record streams read at once; another waits for one of them to end (one publisher a night).
RECORDS_THREADS = 1


class PublicRecordsService(_Timed, pb_grpc.PublicRecordsServicer):
    SERVICE = "report"

    def __init__(self, gateway: Gateway, callers: Callers, read_ahead: int = READ_AHEAD) -> None:
        self.gateway = gateway
        self.callers = callers
        self.read_ahead = read_ahead
        self.executor = ThreadPoolExecutor(RECORDS_THREADS, thread_name_prefix="regfed-records")

    @guarded_stream
    async def Records(  # noqa: N802 - the generated servicer's names
        self, request: pb.RecordsRequest, context: Context
    ) -> AsyncGenerator[Any, None]:
        gateway = self.gateway
        check_reconciler(
            self.callers.identify(context), gateway.directory, "for its public records"
        )
        parts = functools.partial(
            records_parts,
            gateway.ledger.store,
            registry=gateway.me,
            programs=gateway.ledger.programs,
        )
        async for part in pumped(parts, self.executor, self.read_ahead):
            yield part

    def close(self) -> None:
        """Stop taking streams; a read still running ends at its next part."""
        self.executor.shutdown(wait=False, cancel_futures=True)
