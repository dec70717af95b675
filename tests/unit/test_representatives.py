"""Representative rosters: exactly one primary, at most one alternate, nobody twice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regfed.node.domain.errors import InvalidArgument, RepresentativeConflict
from regfed.node.domain.representatives import (
    ALL_RIGHTS,
    Representative,
    Right,
    Role,
    validate_roster,
)

pytestmark = pytest.mark.unit


def rep(person: str, role: Role | str) -> Representative:
    return Representative.of(person, role)


# -- roster rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "roster",
    [
        [rep("alice", "primary")],
        [rep("alice", "primary"), rep("bob", "alternate")],
        [
            rep("alice", "primary"),
            rep("bob", "alternate"),
            rep("carol", "agent"),
            rep("dan", "agent"),
        ],
        [rep("carol", "agent"), rep("alice", "primary")],
    ],
)
def test_valid_rosters(roster: list[Representative]) -> None:
    validate_roster(roster)
    validate_roster(iter(roster))  # any iterable


@pytest.mark.parametrize(
    "roster",
    [
        pytest.param([], id="empty"),
        pytest.param([rep("bob", "alternate")], id="no-primary"),
        pytest.param([rep("carol", "agent"), rep("dan", "agent")], id="only-agents"),
        pytest.param([rep("alice", "primary"), rep("bob", "primary")], id="two-primaries"),
        pytest.param(
            [rep("alice", "primary"), rep("bob", "alternate"), rep("carol", "alternate")],
            id="two-alternates",
        ),
    ],
)
def test_invalid_rosters(roster: list[Representative]) -> None:
    with pytest.raises(RepresentativeConflict) as caught:
        validate_roster(roster)
    assert caught.value.code == "REPRESENTATIVE_CONFLICT"


def test_nobody_holds_two_roles() -> None:
    roster = [
        rep("alice", "primary"),
        rep("alice", "agent"),
        rep("bob", "alternate"),
        rep("bob", "agent"),
    ]
    with pytest.raises(RepresentativeConflict) as caught:
        validate_roster(roster)
    assert caught.value.details == {"people": ["alice", "bob"]}


def test_the_refusal_says_how_many_primaries_are_left() -> None:
    with pytest.raises(RepresentativeConflict, match="leaves 2"):
        validate_roster([rep("a", "primary"), rep("b", "primary")])
    with pytest.raises(RepresentativeConflict, match="leaves 0"):
        validate_roster([rep("a", "agent")])


@given(
    st.lists(
        st.tuples(st.sampled_from(["p1", "p2", "p3", "p4", "p5"]), st.sampled_from(Role)),
        max_size=7,
    )
)
def test_roster_rules_match_the_oracle(people: list[tuple[str, Role]]) -> None:
    roster = [rep(person, role) for person, role in people]
    names = [person for person, _ in people]
    roles = [role for _, role in people]
    ok = (
        len(set(names)) == len(names)
        and roles.count(Role.PRIMARY) == 1
        and roles.count(Role.ALTERNATE) <= 1
    )
    if ok:
        validate_roster(roster)
    else:
        with pytest.raises(RepresentativeConflict):
            validate_roster(roster)


# -- representatives and rights -------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_default_rights_are_all_rights(role: Role) -> None:
    r = Representative.of("alice", role.value)
    assert r.role is role
    assert r.rights == ALL_RIGHTS == frozenset({Right.INITIATE, Right.APPROVE, Right.READ})


def test_an_agent_may_hold_some_rights() -> None:
    agent = Representative.of("carol", "agent", ["read", Right.APPROVE])
    assert agent.rights == frozenset({Right.READ, Right.APPROVE})
    assert agent.to_dict() == {"person": "carol", "role": "agent", "rights": ["approve", "read"]}


def test_the_primary_holds_every_right() -> None:
    with pytest.raises(InvalidArgument):
        Representative.of("alice", "primary", ["read"])
    with pytest.raises(InvalidArgument):
        Representative("alice", Role.PRIMARY, frozenset({Right.INITIATE, Right.APPROVE}))
    assert (
        Representative.of("alice", "primary", ["read", "approve", "initiate"]).rights == ALL_RIGHTS
    )


def test_a_representative_needs_a_person_and_rights() -> None:
    with pytest.raises(InvalidArgument):
        Representative.of("", "agent")
    with pytest.raises(InvalidArgument):
        Representative("carol", Role.AGENT, frozenset())


def test_to_dict_lists_rights_sorted() -> None:
    assert rep("alice", "primary").to_dict() == {
        "person": "alice",
        "role": "primary",
        "rights": ["approve", "initiate", "read"],
    }


# -- known defects (see the report) --------------------------------------------------------------


@pytest.mark.parametrize(("role", "rights"), [("boss", ()), ("agent", ("fly",))])
def test_unknown_role_or_right_is_a_typed_refusal(role: str, rights: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument):
        Representative.of("alice", role, rights)


def test_the_alternate_holds_every_right() -> None:
    with pytest.raises(InvalidArgument):
        Representative.of("bob", "alternate", ["read"])
