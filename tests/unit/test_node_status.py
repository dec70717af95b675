"""Who may read a node's status, and how ages and durations read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from regfed.certs.identity import Identity, Role
from regfed.cli._status import duration
from regfed.gateway.errors import GatewayError, status_of
from regfed.gateway.status import check_status_reader, regfed_version
from regfed.local import Federation
from regfed.local.status import problem


@pytest.mark.parametrize(
    "identity",
    [
        Identity(Role.ADMINISTRATOR, "PA", "admin1"),
        Identity(Role.REGISTRY, "PA"),
        Identity(Role.OVERSIGHT, "EPA"),
    ],
)
def test_administrators_the_node_itself_and_oversight_read_the_status(identity: Identity) -> None:
    check_status_reader(identity, "PA")


@pytest.mark.parametrize(
    "identity",
    [
        Identity(Role.TRADER, "PA", "trader1"),
        Identity(Role.TRADER, "NY", "trader1"),
        Identity(Role.ADMINISTRATOR, "NY", "admin1"),
        Identity(Role.REGISTRY, "NY"),
    ],
)
def test_traders_and_other_registries_are_refused(identity: Identity) -> None:
    with pytest.raises(GatewayError) as refused:
        check_status_reader(identity, "PA")
    assert status_of(refused.value)[:2] == ("PERMISSION_DENIED", "WRONG_ROLE")
    assert "oversight" in refused.value.message


def test_the_version_is_the_installed_release() -> None:
    from regfed import __version__

    assert regfed_version() == __version__


@pytest.mark.parametrize(
    "seconds, text",
    [(None, ""), (0.04, "0.0s"), (12.34, "12.3s"), (245, "4m 05s"), (7380, "2h 03m")],
)
def test_durations_for_people(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text
    assert duration(3 * 86_400 + 4 * 3600 + 5) == "3d 04h"


def _node(health: str, error: dict[str, str] | None = None) -> dict[str, Any]:
    return {"registry": "NY", "endpoint": "127.0.0.1:1", "health": health, "error": error}


@pytest.mark.parametrize(
    "node, says",
    [
        (_node("SERVING"), None),
        (_node("UNREACHABLE", {"status": "UNAVAILABLE", "code": "UNAVAILABLE"}), "restart it"),
        (_node("NOT_SERVING"), "if it does not come back, restart it"),
        (
            _node(
                "SERVING", {"status": "PERMISSION_DENIED", "code": "WRONG_ROLE", "message": "no"}
            ),
            "use --as oversight",
        ),
        (
            _node("SERVING", {"status": "UNIMPLEMENTED", "code": "UNIMPLEMENTED", "message": ""}),
            "upgrade it",
        ),
    ],
)
def test_each_problem_names_the_node_and_what_to_do(node: dict[str, Any], says: str | None) -> None:
    federation = Federation(Path("/nowhere/federation.json"), {})
    found = problem(federation, node)
    if says is None:
        assert found is None
    else:
        assert found is not None and found.startswith("NY ") and says in found
