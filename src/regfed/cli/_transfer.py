"""``regfed transfer ...``: what a trader or an administrator does through their home node."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from regfed.certs.identity import Role
from regfed.gateway.envelope import Envelope
from regfed.gateway.receipts import check_receipts
from regfed.local import Federation, RegistryClient, TransferFailed
from regfed.local.client import transfer_dict
from regfed.node import errors

from . import _ledger
from ._node import add_federation_option
from ._output import EXIT_FAILED, EXIT_REFUSED, block_label, emit_json, table

HINTS = {
    "UNAVAILABLE": "is the node running? start the federation with `regfed up DIR`",
    "NOT_AUTHORIZED": "act with a credential that represents the account (--person NAME)",
    "PERMISSION_DENIED": "this credential may not do that; check --as and --person",
    "REQUEST_ID_CONFLICT": "a retry must repeat the same fields; a new transfer needs a new id",
    "TRANSFER_NOT_FOUND": "check the id with `regfed transfer get ID` as the account's trader",
    "INSUFFICIENT_HOLDINGS": "check `regfed transfer holdings ACCOUNT`",
}


def register(commands: Any) -> None:
    transfer = commands.add_parser(
        "transfer", help="propose, follow, cancel and audit transfers through your home node"
    )
    sub = transfer.add_subparsers(dest="transfer_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        add_federation_option(p)
        p.add_argument("--registry", required=True, help="your home registry (its node)")
        p.add_argument(
            "--as",
            dest="role",
            choices=["trader", "administrator", "oversight"],
            default="trader",
            help="which credential to present (default trader)",
        )
        p.add_argument("--person", default=None, help="whose trader credential (default trader1)")
        p.add_argument("--json", action="store_true")

    p = sub.add_parser("propose", help="move units to an account in any federation registry")
    common(p)
    p.add_argument("--from", dest="from_account", required=True)
    p.add_argument("--to", dest="to_account", required=True)
    _ledger._selection_args(p)
    _ledger.price_args(p)
    p.add_argument("--request-id", help="reuse on a retry: the same id returns the same transfer")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for settlement")
    p.set_defaults(handler=_propose)

    for name, handler, text in (
        ("get", _get, "a transfer's status"),
        ("wait", _wait, "wait until a transfer settles"),
        ("cancel", _cancel, "cancel a proposed transfer (before the commit point)"),
        ("show", _show, "the transfer's signed receipts, every signature and link re-verified"),
    ):
        p = sub.add_parser(name, help=text)
        common(p)
        p.add_argument("transfer_id")
        if name == "wait":
            p.add_argument("--timeout", type=float, default=60.0)
        p.set_defaults(handler=handler)

    p = sub.add_parser("holdings", help="an account's blocks, as its home node reports them")
    common(p)
    p.add_argument("account")
    p.set_defaults(handler=_holdings)


def _client(args: argparse.Namespace) -> RegistryClient:
    federation = Federation.load(args.federation)
    return RegistryClient(federation, args.registry.upper(), Role(args.role), args.person)


def _failed(error: TransferFailed, as_json: bool) -> int:
    if as_json:
        emit_json({"ok": False, "error": error.to_dict()})
    else:
        print(f"error: {error.code} ({error.status}): {error.message}", file=sys.stderr)
        hint = HINTS.get(error.code) or HINTS.get(error.status)
        if hint:
            print(f"  what to do: {hint}", file=sys.stderr)
    return EXIT_FAILED if error.status == "UNAVAILABLE" else EXIT_REFUSED


def _print_transfer(t: dict[str, Any]) -> None:
    settled = "settled" if t["settled"] else "not settled yet"
    print(f"transfer {t['transfer_id']}: {t['status']} ({settled})")
    print(f"  {t['from_account']} -> {t['to_account']}: {t['quantity']:,} units")
    if t.get("price"):
        print(f"  price {t['price']['amount']} {t['price']['currency']} per unit")
    for block in t["blocks"][:10]:
        print(f"  block {block_label(block)}")
    if t["error_code"]:
        print(f"  reason: {t['error_code']} {t['error_message']}".rstrip())


def _guard(args: argparse.Namespace, body: Any) -> int:
    try:
        with _client(args) as client:
            result: dict[str, Any] = body(client)
    except TransferFailed as error:
        return _failed(error, args.json)
    if args.json:
        emit_json(result)
    else:
        _print_transfer(result)
    return 0 if result.get("status") not in ("rejected", "terminated") else EXIT_REFUSED


def _propose(args: argparse.Namespace) -> int:
    selection = _ledger._selection(args)
    if selection.quantity is None and not selection.blocks:
        raise errors.InvalidArgument("name --quantity N or one or more --serials ranges")
    price = _ledger.price_of(args)  # refused here already; the node checks it again

    def body(client: RegistryClient) -> dict[str, Any]:
        t = client.propose(
            args.from_account,
            args.to_account,
            quantity=selection.quantity or 0,
            program=selection.program or "",
            unit_type=selection.unit_type or "",
            vintage=selection.vintage or 0,
            blocks=[b.to_dict() for b in selection.blocks],
            request_id=args.request_id,
            wait_s=max(args.wait, 0),
            price=None if price is None else price.amount,
            currency="" if price is None else price.currency,
        )
        return t

    return _guard(args, body)


def _get(args: argparse.Namespace) -> int:
    return _guard(args, lambda c: c.get(args.transfer_id))


def _wait(args: argparse.Namespace) -> int:
    return _guard(args, lambda c: c.wait_settled(args.transfer_id, args.timeout))


def _cancel(args: argparse.Namespace) -> int:
    return _guard(args, lambda c: c.cancel(args.transfer_id))


def _holdings(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            blocks = client.holdings(args.account)
    except TransferFailed as error:
        return _failed(error, args.json)
    if args.json:
        emit_json({"account": args.account, "blocks": blocks})
    else:
        print(f"account {args.account}")
        print(table(blocks, ["issuer", "program", "unit_type", "vintage", "start", "end", "state"]))
    return 0


def _show(args: argparse.Namespace) -> int:
    federation = Federation.load(args.federation)
    try:
        with _client(args) as client:
            reply = client.receipts(args.transfer_id)
    except TransferFailed as error:
        return _failed(error, args.json)
    receipts = [
        (r.direction, r.recorded_at, Envelope(r.payload, r.sender, r.key_id, r.signature))
        for r in reply.receipts
    ]
    checked = check_receipts(args.transfer_id, receipts, federation.directory())
    ok = bool(checked) and all(c.ok for c in checked)
    transfer = transfer_dict(reply.transfer)
    if args.json:
        emit_json({"transfer": transfer, "receipts": [c.to_dict() for c in checked], "ok": ok})
    else:
        _print_transfer(transfer)
        rows = [
            {
                "#": i + 1,
                "dir": c.direction,
                "step": c.message.step if c.message else "?",
                "kind": c.message.kind.value if c.message else "?",
                "from": c.envelope.sender,
                "digest": (c.message.digest[:12] if c.message else ""),
                "follows": (c.message.prev_hash[:12] if c.message else ""),
                "signature": "ok" if c.signature_ok else "BAD",
                "link": "ok" if c.link_ok else "BROKEN",
                "at": c.recorded_at,
            }
            for i, c in enumerate(checked)
        ]
        print(table(rows))
        problems = [c.problem for c in checked if c.problem]
        for problem in problems:
            print(f"  problem: {problem}")
        print(
            "receipts verified: every signature and link holds" if ok else "RECEIPTS DO NOT VERIFY"
        )
    return 0 if ok else EXIT_REFUSED
