"""A node's log: text for people or one JSON object per line for collectors, on stderr.

Every line about a transfer carries its id: the gateway sets :data:`TRANSFER_ID` while it
handles a transfer's input, tick or proposal, and lines written after a commit (the status
changes) pass it as ``extra``. Stdout is not touched: it carries the node's ``ready`` and
``stopped`` events, which ``regfed.local`` reads.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

FORMATS = ("text", "json")
#: The transfer the current thread (or task) is working on, if any.
TRANSFER_ID: ContextVar[str | None] = ContextVar("regfed_transfer_id", default=None)

# What every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "transfer",  # TextFormatter's own
}


class TransferFilter(logging.Filter):
    """Puts the current transfer's id on a record that does not name one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "transfer_id", None) is None:
            record.transfer_id = TRANSFER_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, registry, message, then transfer_id and
    any other ``extra`` fields, and the traceback as ``exception``."""

    def __init__(self, registry: str) -> None:
        super().__init__()
        self.registry = registry

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "registry": self.registry,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        # default=str: an extra value that JSON cannot carry still leaves a valid line.
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The node's usual line, with the transfer id (when there is one) after the logger."""

    def __init__(self, registry: str) -> None:
        super().__init__(f"%(asctime)s {registry} %(levelname)s %(name)s%(transfer)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        transfer_id = getattr(record, "transfer_id", None)
        record.transfer = f" [{transfer_id}]" if transfer_id else ""
        return super().format(record)


def _iso(created: float) -> str:
    """2026-11-23T10:04:05.123Z: ISO-8601, UTC, milliseconds (as the ledger writes times)."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Enqueue(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The message is fixed now (its arguments could change later); the rest of the
        # formatting, tracebacks included, is left to the log's thread.
        record.msg = record.getMessage()
        record.args = None
        return record


def formatter(fmt: str, registry: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(registry)
    if fmt == "text":
        return TextFormatter(registry)
    raise ValueError(f"log_format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def configure(registry: str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every logger's INFO and above to ``stream`` (stderr) in ``fmt``; in JSON, warnings
    and uncaught exceptions too, so that every line a collector reads parses."""
    if fmt == "json" and stream is None:
        stream = _capture_stderr()
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(formatter(fmt, registry))
    # Lines are formatted and written on a thread of their own: status changes are logged on
    # the node's writer thread (its serial point), where each write to stderr released the GIL
    # and waited to win it back. Written there, `regfed bench transfers` lost ~15% (median of
    # five 20 s runs, 139 vs 165/s, alternating with the code before); from this thread the
    # difference is within the noise of a shared machine. On SIGKILL the few lines still
    # queued are lost; a clean stop writes them.
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _Enqueue(records)
    handler.addFilter(TransferFilter())  # here: the transfer is the caller's
    listener = logging.handlers.QueueListener(records, writer)
    listener.start()
    atexit.register(listener.stop)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    if fmt == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread


#: gRPC's core logs (absl) write straight to file descriptor 2: ``I1123 08:02:37.564908 19280
#: ssl_transport_security.cc:2563] Handshake failed ...``. The letter is the level.
_ABSL = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]]+)\] (.*)$")
_ABSL_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}


def _capture_stderr() -> IO[str]:
    """Route whatever is written to file descriptor 2 (by gRPC's C core, or any library that
    bypasses ``logging``) through the log, one record per line; returns a stream on the real
    stderr for the log itself. A line still in the pipe when the process dies is lost."""
    sys.stderr.flush()
    real = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    threading.Thread(target=_relay, args=(read,), name="regfed-stderr", daemon=True).start()
    return real


def _relay(fd: int) -> None:
    with os.fdopen(fd, "rb") as pipe:
        for raw in pipe:
            text = raw.decode("utf-8", "replace").rstrip()
            if not text:
                continue
            absl = _ABSL.match(text)
            if absl is None:
                logging.getLogger("stderr").warning("%s", text)
            else:
                level, where, message = absl.groups()
                logging.getLogger("grpc.core").log(
                    _ABSL_LEVELS[level], "%s", message, extra={"source": where}
                )


def _log_uncaught(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("regfed.node").critical("uncaught exception", exc_info=(kind, error, tb))


def _log_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    error = args.exc_value or args.exc_type()
    logging.getLogger("regfed.node").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, error, args.exc_traceback),
    )
