"""Who may read a node's status."""

from __future__ import annotations

import pytest

from regfed.certs.identity import Identity, Role
from regfed.gateway.errors import GatewayError, status_of
from regfed.gateway.status import check_status_reader, regfed_version


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
