"""Opening a registry node's database: upgrade the schema, bind the registry code, create the
state's own accounts. ``Registry`` bundles the ledger (writes) and its queries (reads)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from .credits import CreditLedger
from .domain.account_numbers import REGISTRY_CODE
from .domain.accounts import Account, StatePurpose
from .domain.commands import OpenAccount
from .domain.errors import InvalidArgument
from .domain.programs import ProgramCatalog
from .ledger import Clock, Ledger, utc_now
from .queries import LedgerQueries
from .storage.engine import make_engine, normalize_url
from .storage.migrate import upgrade
from .storage.store import Store

#: The state accounts every registry has from the start (set-asides are opened by name).
STANDING_STATE_ACCOUNTS = {
    StatePurpose.ALLOCATION: "State allocation and auction account",
    StatePurpose.RETIREMENT: "State retirement account",
    StatePurpose.SURRENDER: "Compliance surrender account",
}


@dataclass
class Registry:
    code: str
    engine: Engine
    ledger: Ledger
    queries: LedgerQueries

    @property
    def credits(self) -> CreditLedger:
        """Projects, verifiers, documents, and the issuance of credits on approval."""
        return CreditLedger(self.ledger)

    def state_account(self, purpose: StatePurpose) -> Account:
        with self.ledger.store.read() as tx:
            account = tx.state_account(purpose)
        assert account is not None, "open_registry creates every standing state account"
        return account

    def close(self) -> None:
        self.engine.dispose()


def open_registry(
    url: str,
    code: str,
    *,
    programs: ProgramCatalog | None = None,
    clock: Clock = utc_now,
    migrate: bool = True,
) -> Registry:
    """Open (creating or upgrading as needed) the database of registry ``code`` at ``url``."""
    if not REGISTRY_CODE.match(code):
        raise InvalidArgument(f"registry code {code!r} must be 2-4 capital letters")
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    store = Store(engine)
    with store.write() as tx:
        bound = tx.get_meta("registry_code")
        if bound is None:
            tx.set_meta("registry_code", code)
    if bound is not None and bound != code:
        engine.dispose()
        raise InvalidArgument(
            f"database at {url} belongs to registry {bound}, not {code}", registry=bound
        )
    ledger = Ledger(store, code, programs, clock)
    for purpose, name in STANDING_STATE_ACCOUNTS.items():
        with store.read() as tx:
            exists = tx.state_account(purpose) is not None
        if not exists:
            ledger.open_account(
                OpenAccount(
                    operation_id=f"init-{purpose.value}",
                    account_type="state",
                    name=name,
                    purpose=purpose.value,
                ),
                ledger.administrator,
            )
    return Registry(code, engine, ledger, LedgerQueries(store, code, ledger.programs))


def open_existing(
    url: str, *, programs: ProgramCatalog | None = None, clock: Clock = utc_now
) -> Registry:
    """Open a registry database created earlier by :func:`open_registry` (upgrading its schema).
    A SQLite file that does not exist is refused before anything is created: a mistyped path
    must not leave an empty database behind."""
    _require_sqlite_file(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with Store(engine).read() as tx:
            code = tx.get_meta("registry_code")
    finally:
        engine.dispose()
    if code is None:
        raise InvalidArgument(
            f"{url} is not a registry database yet: create it with "
            "`regfed ledger init --db URL --registry CODE`"
        )
    return open_registry(url, code, programs=programs, clock=clock)


def _require_sqlite_file(url: str) -> None:
    parsed = make_url(normalize_url(url))
    if not parsed.drivername.startswith("sqlite"):
        return
    path = parsed.database
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        raise InvalidArgument(
            f"there is no registry database at {path}: check the path, or create one with "
            "`regfed ledger init --db URL --registry CODE`",
            path=path,
        )


def program_catalog(rules: Path | str | None) -> ProgramCatalog:
    """The built-in programs, overridden by the JSON list of program rules in ``rules``
    (a node's ``programs`` setting, ``regfed ledger --programs``); the built-ins alone if None.
    """
    catalog = ProgramCatalog.default()
    if rules is None:
        return catalog
    try:
        overrides = json.loads(Path(rules).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidArgument(f"cannot read program rules {rules}: {error}") from None
    if not isinstance(overrides, list):
        raise InvalidArgument(f"{rules} must hold a JSON list of programs")
    return catalog.with_overrides(overrides)
