"""A local federation: its description file, its node processes, and a client for its APIs."""

from .client import RegistryClient, TransferFailed
from .federation import FEDERATION_ENV, Federation, create_federation
from .processes import LocalFederation

__all__ = [
    "FEDERATION_ENV",
    "Federation",
    "LocalFederation",
    "RegistryClient",
    "TransferFailed",
    "create_federation",
]
