"""Commands: operation ids, selection rules and the idempotency fingerprint."""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfed.node.domain.commands import (
    AppointRepresentative,
    Command,
    DeductCompliance,
    Issue,
    OpenAccount,
    RecordEmissions,
    RemoveRepresentative,
    RepresentativeSpec,
    Retire,
    Selection,
    SetAccountStatus,
    Transfer,
)
from regfed.node.domain.errors import InvalidArgument
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

pytestmark = pytest.mark.unit

BLOCK = UnitBlock(UnitClass("PA", "RGGI", "allowance", 2025), SerialRange(1, 1200))
OP_ID_CHARS = string.ascii_letters + string.digits + "._:-"


def one_of_each(operation_id: str = "op-1") -> list[Command]:
    sel = Selection(quantity=5)
    return [
        OpenAccount(
            operation_id=operation_id,
            account_type="general",
            name="Keystone",
            representatives=(RepresentativeSpec(person="alice", role="primary"),),
        ),
        SetAccountStatus(operation_id=operation_id, account="PA-000017-49", status="restricted"),
        AppointRepresentative(
            operation_id=operation_id,
            account="PA-000017-49",
            representative=RepresentativeSpec(person="bob", role="agent", rights=("read",)),
        ),
        RemoveRepresentative(operation_id=operation_id, account="PA-000017-49", person="bob"),
        Issue(
            operation_id=operation_id,
            program="RGGI",
            unit_type="allowance",
            vintage=2025,
            quantity=1000,
            to_account="PA-000001-97",
        ),
        Transfer(operation_id=operation_id, from_account="A", to_account="B", selection=sel),
        Retire(operation_id=operation_id, from_account="A", selection=sel),
        RecordEmissions(
            operation_id=operation_id, account="A", program="RGGI", period="2024-2026", tons=10
        ),
        DeductCompliance(operation_id=operation_id, program="RGGI", period="2024-2026"),
    ]


# -- operation ids -------------------------------------------------------------------------------


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", fullmatch=True))
def test_valid_operation_ids_are_accepted(op: str) -> None:
    assert DeductCompliance(operation_id=op, program="RGGI", period="2024").operation_id == op


@pytest.mark.parametrize(
    "op",
    ["", "-op", ".op", ":op", "op 1", "op/1", "op\t1", "op\u00e9", "a" * 129, "\nop", "op\r"],
)
def test_invalid_operation_ids_are_refused(op: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        DeductCompliance(operation_id=op, program="RGGI", period="2024")
    assert caught.value.details == {"operation_id": op}


@given(st.text(alphabet=st.characters(exclude_characters="\n"), max_size=140))
def test_operation_id_accepted_iff_it_has_the_documented_form(op: str) -> None:
    documented = (
        1 <= len(op) <= 128
        and op[0].isascii()
        and op[0].isalnum()
        and all(c in OP_ID_CHARS for c in op)
    )
    if documented:
        DeductCompliance(operation_id=op, program="RGGI", period="2024")
    else:
        with pytest.raises(InvalidArgument):
            DeductCompliance(operation_id=op, program="RGGI", period="2024")


def test_128_characters_is_the_limit() -> None:
    DeductCompliance(operation_id="a" * 128, program="RGGI", period="2024")


# -- selection -----------------------------------------------------------------------------------


def test_selection_by_quantity_or_by_blocks() -> None:
    assert Selection(quantity=1).quantity == 1
    assert (
        Selection(quantity=5, program="RGGI", unit_type="allowance", vintage=2025).vintage == 2025
    )
    assert Selection(blocks=(BLOCK,)).blocks == (BLOCK,)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither"),
        pytest.param({"quantity": 5, "blocks": (BLOCK,)}, id="both"),
        pytest.param({"quantity": 0}, id="zero"),
        pytest.param({"quantity": -3}, id="negative"),
        pytest.param({"blocks": (BLOCK,), "program": "RGGI"}, id="blocks-with-program"),
        pytest.param({"blocks": (BLOCK,), "unit_type": "allowance"}, id="blocks-with-type"),
        pytest.param({"blocks": (BLOCK,), "vintage": 2025}, id="blocks-with-vintage"),
    ],
)
def test_bad_selections_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        Selection(**kwargs)  # type: ignore[arg-type]


# -- content and fingerprint ---------------------------------------------------------------------


@pytest.mark.parametrize("command", one_of_each(), ids=lambda c: c.kind)
def test_content_is_json_with_the_kind_and_without_the_operation_id(command: Command) -> None:
    content = command.content()
    assert content["kind"] == type(command).kind
    assert "operation_id" not in content
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    assert command.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()
    assert json.loads(canonical) == content  # only JSON types: lists, not tuples


def test_every_command_kind_is_distinct() -> None:
    kinds = [type(c).kind for c in one_of_each()]
    assert len(set(kinds)) == len(kinds)
    assert len({c.fingerprint() for c in one_of_each()}) == len(kinds)


def test_the_operation_id_is_not_part_of_the_fingerprint() -> None:
    for a, b in zip(one_of_each("op-1"), one_of_each("other:id.2"), strict=True):
        assert a.fingerprint() == b.fingerprint()
        assert a.content() == b.content()


def test_blocks_are_part_of_the_content() -> None:
    t = Transfer(
        operation_id="t", from_account="A", to_account="B", selection=Selection(blocks=(BLOCK,))
    )
    assert t.content()["selection"]["blocks"] == [
        {
            "unit_class": {
                "issuer": "PA",
                "program": "RGGI",
                "unit_type": "allowance",
                "vintage": 2025,
            },
            "serials": {"start": 1, "end": 1200},
        }
    ]
    other = UnitBlock(BLOCK.unit_class, SerialRange(1, 1201))
    u = Transfer(
        operation_id="t", from_account="A", to_account="B", selection=Selection(blocks=(other,))
    )
    assert t.fingerprint() != u.fingerprint()


transfers = st.builds(
    Transfer,
    operation_id=st.just("op"),
    from_account=st.sampled_from(["A", "B"]),
    to_account=st.sampled_from(["A", "B"]),
    memo=st.sampled_from(["", "memo"]),
    selection=st.one_of(
        st.builds(
            Selection,
            quantity=st.integers(1, 3),
            program=st.sampled_from([None, "RGGI"]),
            vintage=st.sampled_from([None, 2024]),
        ),
        st.builds(
            Selection,
            blocks=st.lists(
                st.builds(
                    UnitBlock,
                    st.sampled_from([BLOCK.unit_class]),
                    st.sampled_from([SerialRange(1, 2), SerialRange(1, 3)]),
                ),
                min_size=1,
                max_size=2,
            ).map(tuple),
        ),
    ),
)


@given(transfers, transfers)
def test_fingerprints_are_equal_exactly_when_the_requests_are(a: Transfer, b: Transfer) -> None:
    assert (a.fingerprint() == b.fingerprint()) == (a == b)
    assert (a.fingerprint() == b.fingerprint()) == (a.content() == b.content())


def test_the_kind_alone_separates_fingerprints() -> None:
    @dataclass(frozen=True, kw_only=True)
    class OtherRetire(Retire):
        kind: ClassVar[str] = "other-retire"

    a = Retire(operation_id="op", from_account="A", selection=Selection(quantity=5))
    b = OtherRetire(operation_id="op", from_account="A", selection=Selection(quantity=5))
    body_a = {k: v for k, v in a.content().items() if k != "kind"}
    body_b = {k: v for k, v in b.content().items() if k != "kind"}
    assert body_a == body_b == {"from_account": "A", "selection": body_a["selection"], "reason": ""}
    assert a.fingerprint() != b.fingerprint()


# -- known defects (see the report) --------------------------------------------------------------


def test_an_operation_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        DeductCompliance(operation_id="op-1\n", program="RGGI", period="2024")


def _open(name: str = "Acme", **kw: object) -> OpenAccount:
    return OpenAccount(operation_id="op", account_type="general", name=name, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: _open(""), "must not be empty"),
        (lambda: _open("   "), "must not be empty"),
        (lambda: _open("x" * 201), "at most 200"),
        (lambda: _open("Acme\x00Corp"), "control characters"),
        (lambda: _open("Acme\nCorp"), "control characters"),
        (lambda: _open(source_id="S" * 65), "at most 64"),
        (lambda: _open(set_aside="\x07"), "control characters"),
        (lambda: RepresentativeSpec(person="", role="primary"), "must not be empty"),
        (lambda: RepresentativeSpec(person="p" * 129, role="primary"), "at most 128"),
        (lambda: RemoveRepresentative(operation_id="op", account="A", person="\x00"), "control"),
        (
            lambda: SetAccountStatus(
                operation_id="op", account="A", status="closed", reason="r" * 501
            ),
            "at most 500",
        ),
        (
            lambda: Retire(
                operation_id="op", from_account="A", selection=Selection(quantity=1), reason="\x1b"
            ),
            "control",
        ),
        (
            lambda: Transfer(
                operation_id="op",
                from_account="A",
                to_account="B",
                selection=Selection(quantity=1),
                memo="m" * 501,
            ),
            "at most 500",
        ),
    ],
)
def test_free_text_is_bounded_and_printable_on_every_engine(make: object, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        make()  # type: ignore[operator]


def test_free_text_at_its_limits_and_beyond_ascii_is_accepted() -> None:
    assert _open("x" * 200, source_id="S" * 64).name == "x" * 200
    assert _open("Société Énergie — Ñandú 株式会社").name.startswith("Société")
    assert Retire(operation_id="op", from_account="A", selection=Selection(quantity=1)).reason == ""
