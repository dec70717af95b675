"""A state's registry node: accounts, representatives and units held as serial blocks.

The public surface is curated here; everything else is private to the package.
"""

from . import interstate
from .domain import errors
from .domain.account_numbers import AccountNumber
from .domain.accounts import Account, AccountStatus, AccountType, StatePurpose
from .domain.actors import Actor, ActorKind
from .domain.commands import (
    AppointRepresentative,
    DeductCompliance,
    GatewayStep,
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
from .domain.errors import RegistryError
from .domain.holdings import BlockState
from .domain.programs import ControlPeriod, ProgramCatalog, ProgramRules
from .domain.serials import SerialRange, UnitBlock, UnitClass
from .ledger import Ledger, OperationResult, Work
from .queries import LedgerQueries, VerifyReport
from .registry import Registry, open_existing, open_registry, program_catalog

__all__ = [
    "Account",
    "AccountNumber",
    "AccountStatus",
    "AccountType",
    "Actor",
    "ActorKind",
    "AppointRepresentative",
    "BlockState",
    "ControlPeriod",
    "DeductCompliance",
    "GatewayStep",
    "Issue",
    "Ledger",
    "LedgerQueries",
    "OpenAccount",
    "OperationResult",
    "ProgramCatalog",
    "ProgramRules",
    "RecordEmissions",
    "Registry",
    "RegistryError",
    "RemoveRepresentative",
    "RepresentativeSpec",
    "Retire",
    "Selection",
    "SerialRange",
    "SetAccountStatus",
    "StatePurpose",
    "Transfer",
    "UnitBlock",
    "UnitClass",
    "VerifyReport",
    "Work",
    "errors",
    "interstate",
    "open_existing",
    "open_registry",
    "program_catalog",
]
