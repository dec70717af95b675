"""Account numbers: registry code, a six-digit sequence and ISO 7064 MOD 97-10 check digits.

``PA-000017-49``. MOD 97-10 (the IBAN check) catches every single mistyped character and every
swap of two adjacent characters, and it covers the registry code too, so a number typed for the
wrong registry fails its check instead of reaching another account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import AccountNumberCheckFailed, AccountNumberMalformed

_PATTERN = re.compile(r"([A-Z]{2,4})-([0-9]{6})-([0-9]{2})", re.ASCII)
REGISTRY_CODE = re.compile(r"[A-Z]{2,4}", re.ASCII)


def _digits(registry: str, sequence: str) -> str:
    # Letters become two-digit numbers (A=10 ... Z=35), as in ISO 13616.
    return "".join(str(ord(ch) - 55) for ch in registry) + sequence


def check_digits(registry: str, sequence: int) -> str:
    seq = f"{sequence:06d}"
    return f"{98 - int(_digits(registry, seq) + '00') % 97:02d}"


@dataclass(frozen=True, order=True, slots=True)
class AccountNumber:
    registry: str
    sequence: int

    @classmethod
    def make(cls, registry: str, sequence: int) -> AccountNumber:
        if not REGISTRY_CODE.fullmatch(registry) or not 0 < sequence < 1_000_000:
            raise AccountNumberMalformed(
                f"cannot number account {sequence} in registry {registry!r}"
            )
        return cls(registry, sequence)

    @classmethod
    def parse(cls, text: str) -> AccountNumber:
        match = _PATTERN.fullmatch(text.strip().upper())
        if not match or int(match.group(2)) == 0:
            raise AccountNumberMalformed(
                f"{text!r} is not an account number (expected like PA-000017-49)", number=text
            )
        registry, seq, check = match.groups()
        # Only the canonical check digits (02-98) are accepted: 01 and 98 agree modulo 97, and
        # a number must have one spelling.
        if check != check_digits(registry, int(seq)):
            raise AccountNumberCheckFailed(f"{text!r} fails its check digits", number=text)
        return cls(registry, int(seq))

    def __str__(self) -> str:
        return f"{self.registry}-{self.sequence:06d}-{check_digits(self.registry, self.sequence)}"
