"""Two registries' gateways (PA and NY) on one engine, exchanging signed messages by hand:
for the tests of transfer prices, of the public records and of the snapshots a node streams."""

from __future__ import annotations

import base64
import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from conftest import create_postgres_database, drop_postgres_database
from regfed.certs.directory import Directory, Member
from regfed.certs.identity import Identity, Role
from regfed.gateway.service import Gateway, Outbound
from regfed.gateway.trading import Trading, TransferRequest, TransferView
from regfed.node import Price, Selection, open_registry
from support import person

KEYS = {code: ed25519.Ed25519PrivateKey.generate() for code in ("PA", "NY")}
_requests = itertools.count(1)


def _member(code: str, key: ed25519.Ed25519PrivateKey) -> Member:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Member(code, Role.REGISTRY, "127.0.0.1:1", "", base64.b64encode(raw).decode())


@dataclasses.dataclass
class Pair:
    pa: Gateway
    ny: Gateway

    def gateway(self, code: str) -> Gateway:
        return self.pa if code == "PA" else self.ny

    def deliver(self, outbound: list[Outbound], rounds: int = 8) -> None:
        """Hand each message to its receiver and the replies back, like the dispatcher."""
        for _ in range(rounds):
            follow: list[Outbound] = []
            for o in outbound:
                sender = o.envelope.sender
                replies = self.gateway(o.peer).receive(o.envelope, Identity(Role.REGISTRY, sender))
                follow += self.gateway(sender).answer(o.peer, replies)
            outbound = follow

    def propose(
        self,
        who: str,
        from_account: str,
        to_account: str,
        selection: Selection,
        price: Price | None = None,
        request_id: str | None = None,
    ) -> tuple[TransferView, list[Outbound]]:
        """``who``'s proposal at the registry of ``from_account``, through its client API."""
        gateway = self.gateway(from_account[:2])
        request = TransferRequest(
            request_id or f"req-{next(_requests)}", from_account, to_account, selection, price
        )
        return Trading(gateway).propose(person(who), request)


@contextmanager
def gateway_pair(db_url: str, tmp_path: Path) -> Iterator[Pair]:
    """PA on ``db_url``'s engine and NY on a fresh database of the same engine."""
    sqlite = db_url.startswith("sqlite")
    ny_url = f"sqlite:///{tmp_path / 'ny.db'}" if sqlite else create_postgres_database()
    directory = Directory(1, tuple(_member(c, k) for c, k in KEYS.items()))
    regs = [open_registry(db_url, "PA"), open_registry(ny_url, "NY")]
    try:
        yield Pair(
            Gateway(regs[0], KEYS["PA"], directory, hold_seconds=600),
            Gateway(regs[1], KEYS["NY"], directory, hold_seconds=600),
        )
    finally:
        for reg in regs:
            reg.close()
        if not sqlite:
            drop_postgres_database(ny_url)
