"""A registry's public records stream: cut into parts under the size limit by the node, read
back whole by the publisher, and refused (so the registry counts as missing) when it breaks its
contract: no header, another registry's, sections out of order, counts that do not match, no
trailer, anything after it, a price that is not one."""

from __future__ import annotations

from typing import Any

import pytest

from regfed.gateway import records_source
from regfed.gateway._generated.report.v1 import report_pb2 as pb
from regfed.gateway.records_source import section_parts
from regfed.gateway.snapshot_stream import MAX_PART_BYTES
from regfed.reports import RecordsRefused, read_records
from regfed.reports.stream import SECTIONS as READ_SECTIONS

pytestmark = pytest.mark.unit


def block(start: int) -> Any:
    return pb.Block(
        issuer="NY", program="RGGI", unit_type="allowance", vintage=2025, start=start, end=start
    )


def movement(i: int, price: Any = None) -> Any:
    return pb.Movement(
        kind="transfer",
        seq=i,
        recorded_at="2027-01-01T00:00:00.000000Z",
        operation_id=f"op-{i}-" + "x" * 100,
        from_account="NY-000004-90",
        to_account="NY-000005-87",
        block=block(7_340_011 + i),
        price=price,
    )


def stream(*sections: tuple[str, list[Any]], registry: str = "NY") -> list[Any]:
    parts = [pb.RecordsPart(header=pb.Header(registry=registry, journal_position=9))]
    counts = {}
    for name, rows in sections:
        parts += list(section_parts(name, rows))
        counts[name] = len(rows)
    parts.append(pb.RecordsPart(trailer=pb.Trailer(**counts)))
    return parts


def account(number: str) -> Any:
    return pb.Account(
        number=number, type="general", name="Empire", status="open", programs=["RGGI"]
    )


def test_the_node_and_the_reader_agree_on_the_sections() -> None:
    assert records_source.SECTIONS == READ_SECTIONS


def test_many_records_are_cut_into_parts_under_the_limit_and_read_back_whole() -> None:
    rows = [movement(i) for i in range(5_000)]
    parts = list(section_parts("movements", rows))
    assert len(parts) > 3
    assert all(p.ByteSize() <= MAX_PART_BYTES for p in parts)
    assert [m for p in parts for m in p.movements.rows] == rows
    records = read_records(stream(("movements", rows)), "NY")
    assert [m.serials.start for m in records.movements] == [7_340_011 + i for i in range(5_000)]
    assert records.journal_position == 9


def test_representatives_are_joined_to_their_accounts() -> None:
    reps = [pb.Representative(account="NY-000004-90", person="ophelia", role="primary")]
    records = read_records(
        stream(("accounts", [account("NY-000004-90")]), ("representatives", reps)), "NY"
    )
    assert records.accounts[0].representatives == (("ophelia", "primary"),)
    stray = [pb.Representative(account="NY-000099-99", person="x", role="agent")]
    with pytest.raises(RecordsRefused, match="MALFORMED"):
        read_records(
            stream(("accounts", [account("NY-000004-90")]), ("representatives", stray)), "NY"
        )


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        (lambda s: s[1:], "OUT_OF_ORDER"),  # no header
        (lambda s: s[:-1], "TRUNCATED"),  # no trailer
        (lambda s: [*s, s[1]], "OUT_OF_ORDER"),  # a part after the trailer
        (lambda s: [s[0], *s], "OUT_OF_ORDER"),  # two headers
        (lambda s: [s[0], s[2], s[1], *s[3:]], "OUT_OF_ORDER"),  # movements before accounts
        (lambda s: [*s[:2], *s[3:]], "COUNT_MISMATCH"),  # a part lost
        (lambda s: [*s[:-1], *s[2:3], s[-1]], "COUNT_MISMATCH"),  # a part twice
    ],
)
def test_a_broken_stream_is_refused(parts: Any, code: str) -> None:
    whole = stream(("accounts", [account("NY-000004-90")]), ("movements", [movement(1)]))
    assert len(whole) == 4
    with pytest.raises(RecordsRefused, match=code) as refused:
        read_records(parts(whole), "NY")
    assert refused.value.registry == "NY"


def test_another_registrys_stream_is_refused() -> None:
    with pytest.raises(RecordsRefused, match="WRONG_REGISTRY"):
        read_records(stream(registry="PA"), "NY")


@pytest.mark.parametrize(
    ("amount", "currency"), [("12.5", "USD"), ("-1.00", "USD"), ("1e3", "USD"), ("1.00", "usd")]
)
def test_a_price_that_is_not_one_breaks_the_stream(amount: str, currency: str) -> None:
    bad = movement(1, pb.Price(amount=amount, currency=currency))
    with pytest.raises(RecordsRefused, match="MALFORMED"):
        read_records(stream(("movements", [bad])), "NY")
    good = movement(1, pb.Price(amount="12.50", currency="USD"))
    [read] = read_records(stream(("movements", [good])), "NY").movements
    assert read.price is not None and (read.price.amount, read.price.currency) == ("12.50", "USD")
