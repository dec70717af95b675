import pytest

from regfed.node import Selection, StatePurpose, Transfer
from support import issue, open_general, open_test_registry

pytestmark = pytest.mark.integration


def test_life_cycle_on_both_engines(db_url: str) -> None:
    reg = open_test_registry(db_url)
    acme = open_general(reg, "alice")
    issue(reg, 1000)
    alloc = reg.state_account(StatePurpose.ALLOCATION).label
    reg.ledger.transfer(
        Transfer(
            operation_id="t1", from_account=alloc, to_account=acme, selection=Selection(quantity=10)
        ),
        reg.ledger.administrator,
    )
    assert reg.queries.verify().ok
    reg.close()
