"""Who a certificate names: a role and a registry (and a person, for traders).

The identity travels in the certificate's subject alternative name as a URI,
``urn:regfed:<role>:<registry>[:<person>]``, so every gRPC port can tell, from the TLS handshake
alone, a registry node from the oversight node, an administrator or a trader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

_URI = re.compile(
    r"urn:regfed:(registry|oversight|administrator|trader):([A-Z]{2,4})(?::([\w.@-]+))?", re.ASCII
)


class Role(StrEnum):
    REGISTRY = "registry"
    OVERSIGHT = "oversight"
    ADMINISTRATOR = "administrator"
    TRADER = "trader"


@dataclass(frozen=True, slots=True)
class Identity:
    role: Role
    registry: str
    person: str | None = None

    @property
    def uri(self) -> str:
        tail = f":{self.person}" if self.person else ""
        return f"urn:regfed:{self.role.value}:{self.registry}{tail}"

    @classmethod
    def parse(cls, uri: str) -> Identity:
        match = _URI.fullmatch(uri)
        if not match:
            raise ValueError(f"{uri!r} is not a regfed identity")
        role, registry, person = match.groups()
        return cls(Role(role), registry, person)

    @classmethod
    def of_certificate(cls, certificate: x509.Certificate) -> Identity:
        """The single regfed identity a certificate carries; anything else is refused."""
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            raise ValueError("certificate has no subject alternative name") from None
        found = [
            u
            for u in san.value.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith("urn:regfed:")
        ]
        if len(found) != 1:
            raise ValueError(f"certificate must name exactly one regfed identity, has {found}")
        return cls.parse(found[0])
