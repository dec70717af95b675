"""A state's registry node: accounts, representatives and units held as serial blocks.

The public surface is curated here; everything else is private to the package.
"""

from . import interstate
from .credits import CreditLedger
from .domain import errors
from .domain.account_numbers import AccountNumber
from .domain.accounts import Account, AccountStatus, AccountType, StatePurpose
from .domain.actors import Actor, ActorKind
from .domain.commands import (
    AccreditVerifier,
    AppointRepresentative,
    DeductCompliance,
    GatewayStep,
    Issue,
    OpenAccount,
    RecordEmissions,
    RegisterProject,
    RemoveRepresentative,
    RepresentativeSpec,
    Retire,
    ReviewDocument,
    Selection,
    SetAccountStatus,
    SetProjectStatus,
    SubmitDocument,
    Transfer,
)
from .domain.errors import RegistryError
from .domain.holdings import BlockState
from .domain.prices import Price
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
    "AccreditVerifier",
    "Actor",
    "ActorKind",
    "AppointRepresentative",
    "BlockState",
    "ControlPeriod",
    "CreditLedger",
    "DeductCompliance",
    "GatewayStep",
    "Issue",
    "Ledger",
    "LedgerQueries",
    "OpenAccount",
    "OperationResult",
    "Price",
    "ProgramCatalog",
    "ProgramRules",
    "RecordEmissions",
    "RegisterProject",
    "Registry",
    "RegistryError",
    "RemoveRepresentative",
    "RepresentativeSpec",
    "Retire",
    "ReviewDocument",
    "Selection",
    "SerialRange",
    "SetAccountStatus",
    "SetProjectStatus",
    "StatePurpose",
    "SubmitDocument",
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
