"""A node's log lines: JSON objects (or the usual text) that name the transfer they are about."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest

from regfed.gateway.changes import TransferChange, describe
from regfed.gateway.logs import TRANSFER_ID, TextFormatter, TransferFilter, formatter


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("regfed.gateway", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def emit(fmt: str, rec: logging.LogRecord) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt, "PA"))
    handler.addFilter(TransferFilter())
    handler.handle(rec)
    return stream.getvalue()


def test_a_json_line_has_the_common_keys_and_the_current_transfer() -> None:
    token = TRANSFER_ID.set("PA-1")
    try:
        line = json.loads(emit("json", record("hello %s", "NY")))
    finally:
        TRANSFER_ID.reset(token)
    assert line.keys() >= {"ts", "level", "logger", "registry", "message", "transfer_id"}
    assert (line["level"], line["logger"], line["registry"]) == ("INFO", "regfed.gateway", "PA")
    assert (line["message"], line["transfer_id"]) == ("hello NY", "PA-1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_extra_fields_are_kept_and_an_explicit_transfer_wins() -> None:
    token = TRANSFER_ID.set("PA-ambient")
    try:
        line = json.loads(emit("json", record(transfer_id="NY-2", side="destination")))
    finally:
        TRANSFER_ID.reset(token)
    assert (line["transfer_id"], line["side"]) == ("NY-2", "destination")


def test_a_line_about_no_transfer_has_no_transfer_id() -> None:
    assert "transfer_id" not in json.loads(emit("json", record("plain")))
    assert "[" not in emit("text", record("plain"))


def test_a_traceback_stays_inside_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed")
        rec.exc_info = sys.exc_info()
    out = emit("json", rec)
    assert out.count("\n") == 1
    assert "ValueError: boom" in json.loads(out)["exception"]


def test_text_keeps_its_look_and_shows_the_transfer() -> None:
    out = emit("text", record("hello %s", "NY", transfer_id="PA-1"))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} PA INFO regfed.gateway \[PA-1\]: hello NY\n", out
    )
    assert isinstance(formatter("text", "PA"), TextFormatter)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        formatter("xml", "PA")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (TransferChange("t", "source", "NY", "proposed", False, None), "proposed to NY"),
        (TransferChange("t", "source", "NY", "completed", False, "proposed"), "debited"),
        (TransferChange("t", "source", "NY", "completed", True, "completed"), "settled"),
        (TransferChange("t", "source", "NY", "rejected", True, "proposed", "X"), "X: escrow"),
        (TransferChange("t", "source", "NY", "rejected", True, None, "BROKE"), "before any"),
        (TransferChange("t", "destination", "PA", "accepted", False, None), "credit pinned"),
        (TransferChange("t", "destination", "PA", "completed", True, "accepted"), "credited"),
        (TransferChange("t", "destination", "PA", "cancelled", True, "accepted"), "dropped"),
        (TransferChange("t", "local", "PA", "completed", True, None), "intrastate"),
    ],
)
def test_each_status_change_says_what_happened(change: TransferChange, words: str) -> None:
    assert words in describe(change)
