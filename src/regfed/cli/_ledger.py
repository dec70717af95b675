"""``regfed ledger ...``: a registry operator's commands against one registry database.

These act on the database directly, as the registry's operator; traders and other registries
reach a node over the network through the federation gateway.
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
from typing import Any

from regfed.node import (
    Actor,
    DeductCompliance,
    Issue,
    OpenAccount,
    Price,
    ProgramCatalog,
    RecordEmissions,
    Registry,
    RepresentativeSpec,
    Retire,
    Selection,
    SerialRange,
    SetAccountStatus,
    StatePurpose,
    Transfer,
    UnitBlock,
    UnitClass,
    errors,
    open_existing,
    open_registry,
    program_catalog,
)
from regfed.node.storage.engine import make_engine
from regfed.node.storage.migrate import current_revision, head_revision, upgrade

from ._output import block_label, emit_json, table, whole_number

DB_ENV = "REGFED_DB"
PROGRAMS_ENV = "REGFED_PROGRAMS"
_BLOCK = re.compile(r"^([A-Z]{2,4})/([A-Za-z0-9]+)/([a-z]+)/([0-9]{4}):([0-9]+)-([0-9]+)$")


def register(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="operate one registry's ledger")
    sub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    cmd = ledger_command(sub)
    _register_actions(cmd)


def ledger_command(sub: Any) -> Any:
    """A maker of subcommands that act on one registry's database (``--db``, ``--json``,
    ``--programs``), shared with ``regfed credits``."""

    def cmd(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--db",
            default=os.environ.get(DB_ENV),
            help=f"database URL or SQLite file (default: ${DB_ENV})",
        )
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument(
            "--programs",
            default=os.environ.get(PROGRAMS_ENV),
            help="JSON file adding or overriding program rules "
            f"(default: ${PROGRAMS_ENV}); see docs/ledger.md",
        )
        p.set_defaults(handler=handler)
        return p

    return cmd


def _register_actions(cmd: Any) -> None:
    p = cmd("init", "create (or upgrade) a registry database and its state accounts", _init)
    p.add_argument("--registry", required=True, help="registry code, e.g. PA")
    cmd("upgrade", "upgrade the database schema to this version of regfed", _upgrade)
    cmd("accounts", "list accounts and their representatives", _accounts)

    p = cmd("open-account", "open an account", _open_account)
    p.add_argument("--type", required=True, choices=["general", "compliance", "state"])
    p.add_argument("--name", required=True)
    p.add_argument("--source", help="regulated source of a compliance account")
    p.add_argument("--purpose", choices=["set-aside"], help="state accounts: set-aside")
    p.add_argument("--set-aside", help="name of a set-aside account")
    p.add_argument(
        "--rep",
        action="append",
        default=[],
        metavar="PERSON[:ROLE[:RIGHTS]]",
        help="representative; ROLE primary|alternate|agent, RIGHTS like initiate+read",
    )
    _actor_and_op(p)

    p = cmd("set-status", "restrict, reopen or close an account", _set_status)
    p.add_argument("--account", required=True)
    p.add_argument("--status", required=True, choices=["open", "restricted", "closed"])
    p.add_argument("--reason", default="")
    _actor_and_op(p)

    p = cmd("issue", "issue new units into a state account (administrator)", _issue)
    p.add_argument("--program", required=True)
    p.add_argument("--unit-type", default="allowance")
    p.add_argument("--vintage", required=True, type=whole_number)
    p.add_argument("--quantity", required=True, type=whole_number)
    p.add_argument("--to", help="state account (default: the allocation account)")
    p.add_argument("--start", type=whole_number, help="first serial (default: next free)")
    _actor_and_op(p)

    for name, help_text, handler in (
        ("transfer", "move units between two accounts of this registry", _transfer),
        ("retire", "retire units voluntarily (permanent)", _retire),
    ):
        p = cmd(name, help_text, handler)
        p.add_argument("--from", dest="from_account", required=True)
        if name == "transfer":
            p.add_argument("--to", required=True)
            price_args(p)
        _selection_args(p)
        _actor_and_op(p)

    p = cmd("emissions", "record a source's emissions for a control period", _emissions)
    p.add_argument("--account", required=True)
    p.add_argument("--program", required=True)
    p.add_argument("--period", required=True, help="YYYY or YYYY-YYYY")
    amount = p.add_mutually_exclusive_group(required=True)
    amount.add_argument("--tons", type=whole_number, help="mass-based programs")
    amount.add_argument("--co2-lb", type=whole_number, help="rate-based programs: CO2 in lb")
    p.add_argument("--mwh", type=whole_number, help="rate-based: generation in MWh")
    p.add_argument("--standard", help="rate-based: the source's standard in lb/MWh")
    _actor_and_op(p)

    p = cmd("deduct", "compliance deduction for a program's control period", _deduct)
    p.add_argument("--program", required=True)
    p.add_argument("--period", required=True)
    p.add_argument("--account", action="append", default=[], help="only these accounts")
    p.add_argument(
        "--serials",
        action="append",
        default=[],
        metavar="ISSUER/PROGRAM/TYPE/VINTAGE:START-END",
        help="surrender exactly these blocks of the one --account (within share limits)",
    )
    _actor_and_op(p)

    p = cmd("holdings", "an account's blocks and totals", _holdings)
    p.add_argument("--account", required=True)
    p.add_argument("--as", dest="actor", default="admin")
    p = cmd("statement", "an account's journal entries over a period", _statement)
    p.add_argument("--account", required=True)
    p.add_argument("--since", help="ISO date or time, inclusive (UTC without an offset)")
    p.add_argument("--until", help="ISO date or time, exclusive (UTC without an offset)")
    p.add_argument("--as", dest="actor", default="admin")
    cmd("totals", "units per class and state across the registry", _totals)
    cmd("compliance", "emissions, surrendered and shortfall per source and period", _compliance)
    cmd("verify", "replay the journal and check the ledger's invariants", _verify)
    cmd("programs", "the programs this registry knows and their account rules", _programs)


def _actor_and_op(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as",
        dest="actor",
        default="admin",
        help="acting person, or 'admin' for the registry administrator",
    )
    p.add_argument("--op-id", help="idempotency key (default: a new random id, printed)")


def price_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--price",
        metavar="AMOUNT",
        help="price per unit agreed, e.g. 12.50 (positive, at most 2 decimals); the registry "
        "records it and the price report publishes it where the program's policy allows",
    )
    p.add_argument(
        "--currency",
        metavar="CODE",
        default="",
        help="ISO 4217 currency of --price (default USD)",
    )


def price_of(args: argparse.Namespace) -> Price | None:
    if args.price is None:
        if args.currency:
            raise errors.InvalidArgument("--currency goes with --price AMOUNT")
        return None
    return Price.parse(args.price, args.currency)


def _selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantity", type=whole_number)
    p.add_argument("--program")
    p.add_argument("--unit-type")
    p.add_argument("--vintage", type=whole_number)
    p.add_argument(
        "--serials", action="append", default=[], metavar="ISSUER/PROGRAM/TYPE/VINTAGE:START-END"
    )


def _db(args: argparse.Namespace) -> str:
    if not args.db:
        raise errors.InvalidArgument(f"name the registry database with --db URL or ${DB_ENV}")
    return str(args.db)


def _programs_catalog(args: argparse.Namespace) -> ProgramCatalog:
    return program_catalog(args.programs or None)


def _registry(args: argparse.Namespace) -> Registry:
    return open_existing(_db(args), programs=_programs_catalog(args))


def _actor(reg: Registry, name: str) -> Actor:
    return reg.ledger.administrator if name == "admin" else Actor.person(name)


def _op(args: argparse.Namespace) -> str:
    return str(args.op_id or f"cli-{uuid.uuid4()}")


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        quantity=args.quantity,
        program=args.program,
        unit_type=args.unit_type,
        vintage=args.vintage,
        blocks=_selection_blocks(args.serials),
    )


def _selection_blocks(texts: list[str]) -> tuple[UnitBlock, ...]:
    blocks = []
    for text in texts:
        m = _BLOCK.match(text)
        if not m:
            raise errors.InvalidArgument(
                f"--serials {text!r} is not ISSUER/PROGRAM/TYPE/VINTAGE:START-END"
            )
        issuer, program, unit_type, vintage, start, end = m.groups()
        blocks.append(
            UnitBlock(
                UnitClass(issuer, program, unit_type, int(vintage)),
                SerialRange(int(start), int(end)),
            )
        )
    return tuple(blocks)


def _done(args: argparse.Namespace, result: Any, summary: str) -> int:
    if args.json:
        emit_json({"ok": True, **result.to_dict()})
        return 0
    replay = " (already applied: stored answer, nothing changed)" if result.replayed else ""
    print(f"{summary}{replay}")
    print(f"  operation {result.operation_id}, journal entry {result.seq}")
    for m in result.movements:
        print(f"  {block_label(m)}  {m['from'] or 'issued'} -> {m['to']} ({m['state']})")
    return 0


def _init(args: argparse.Namespace) -> int:
    reg = open_registry(_db(args), args.registry, programs=_programs_catalog(args))
    accounts = reg.queries.accounts()
    reg.close()
    if args.json:
        emit_json({"ok": True, "registry": args.registry, "accounts": accounts})
    else:
        print(f"registry {args.registry} ready at {args.db}")
        print(table(accounts, ["account", "type", "purpose", "name"]))
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    engine = make_engine(_db(args))
    before, after = upgrade(engine)
    engine.dispose()
    if args.json:
        emit_json({"ok": True, "before": before, "after": after, "head": head_revision()})
    else:
        print(f"schema {before or '(empty)'} -> {after} (head {head_revision()})")
    return 0


def _accounts(args: argparse.Namespace) -> int:
    reg = _registry(args)
    rows = reg.queries.accounts()
    reg.close()
    if args.json:
        emit_json({"accounts": rows})
        return 0
    for r in rows:
        r["reps"] = ", ".join(f"{x['person']} ({x['role']})" for x in r["representatives"])
    print(table(rows, ["account", "type", "purpose", "status", "source_id", "name", "reps"]))
    return 0


def _open_account(args: argparse.Namespace) -> int:
    reps = []
    for spec in args.rep:
        person, _, rest = spec.partition(":")
        role, _, rights = rest.partition(":")
        reps.append(
            RepresentativeSpec(
                person=person,
                role=role or "primary",
                rights=tuple(r for r in rights.split("+") if r),
            )
        )
    reg = _registry(args)
    result = reg.ledger.open_account(
        OpenAccount(
            operation_id=_op(args),
            account_type=args.type,
            name=args.name,
            representatives=tuple(reps),
            source_id=args.source,
            purpose=args.purpose,
            set_aside=args.set_aside,
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    return _done(args, result, f"opened account {result.detail['account']}")


def _set_status(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.ledger.set_account_status(
        SetAccountStatus(
            operation_id=_op(args), account=args.account, status=args.status, reason=args.reason
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    return _done(args, result, f"account {args.account} is now {args.status}")


def _issue(args: argparse.Namespace) -> int:
    reg = _registry(args)
    to = args.to or reg.state_account(StatePurpose.ALLOCATION).label
    result = reg.ledger.issue(
        Issue(
            operation_id=_op(args),
            program=args.program,
            unit_type=args.unit_type,
            vintage=args.vintage,
            quantity=args.quantity,
            to_account=to,
            start=args.start,
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    return _done(args, result, f"issued {args.quantity:,} units into {to}")


def _transfer(args: argparse.Namespace) -> int:
    price = price_of(args)  # checked before the database is opened
    reg = _registry(args)
    result = reg.ledger.transfer(
        Transfer(
            operation_id=_op(args),
            from_account=args.from_account,
            to_account=args.to,
            selection=_selection(args),
            price=price,
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    at = f" at {price} per unit" if price is not None else ""
    return _done(args, result, f"transferred {result.detail['quantity']:,} units{at}")


def _retire(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.ledger.retire(
        Retire(operation_id=_op(args), from_account=args.from_account, selection=_selection(args)),
        _actor(reg, args.actor),
    )
    reg.close()
    return _done(args, result, f"retired {result.detail['quantity']:,} units")


def _emissions(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.ledger.record_emissions(
        RecordEmissions(
            operation_id=_op(args),
            account=args.account,
            program=args.program,
            period=args.period,
            tons=args.tons if args.tons is not None else args.co2_lb,
            mwh=args.mwh,
            standard=args.standard,
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    if args.tons is not None:
        return _done(args, result, f"recorded {args.tons:,} tons for {args.account}")
    owed = result.detail.get("obligation")
    return _done(
        args,
        result,
        f"recorded {args.co2_lb:,} lb CO2 over {args.mwh or 0:,} MWh for {args.account}"
        + (f": {owed:,} ERCs owed" if owed is not None else ""),
    )


def _deduct(args: argparse.Namespace) -> int:
    reg = _registry(args)
    result = reg.ledger.deduct_compliance(
        DeductCompliance(
            operation_id=_op(args),
            program=args.program,
            period=args.period,
            accounts=tuple(args.account),
            blocks=_selection_blocks(args.serials),
        ),
        _actor(reg, args.actor),
    )
    reg.close()
    if args.json:
        return _done(args, result, "")
    print(
        table(
            result.detail["sources"],
            ["account", "source", "obligation", "previously_surrendered", "deducted", "shortfall"],
        )
    )
    return _done(
        args,
        result,
        f"deducted {result.detail['deducted']:,}, shortfall {result.detail['shortfall']:,}",
    )


def _holdings(args: argparse.Namespace) -> int:
    reg = _registry(args)
    view = reg.queries.holdings(args.account, _actor(reg, args.actor)).to_dict()
    reg.close()
    if args.json:
        emit_json(view)
        return 0
    print(f"account {view['account']} ({view['account_type']}, {view['status']})")
    print(table(view["totals"]))
    print()
    print(
        table(
            view["blocks"], ["issuer", "program", "unit_type", "vintage", "start", "end", "state"]
        )
    )
    return 0


def _statement(args: argparse.Namespace) -> int:
    reg = _registry(args)
    statement = reg.queries.statement(args.account, _actor(reg, args.actor), args.since, args.until)
    reg.close()
    if args.json:
        emit_json(statement)
        return 0
    print(format_statement(statement))
    return 0


def format_statement(statement: dict[str, Any]) -> str:
    rows = [
        {
            "seq": e["seq"],
            "when": e["recorded_at"][:19].replace("T", " "),
            "kind": e["kind"],
            "actor": e["actor"],
            "in": e["units_in"],
            "out": e["units_out"],
            "counterparty": _counterparty(e, statement["account"]),
        }
        for e in statement["entries"]
    ]
    return f"statement of account {statement['account']}\n" + table(rows)


def _counterparty(entry: dict[str, Any], account: str) -> str:
    others = {b["to"] if b["from"] == account else b["from"] for b in entry["blocks"]}
    return ", ".join(sorted(o for o in others if o and o != account))


def _totals(args: argparse.Namespace) -> int:
    reg = _registry(args)
    rows = reg.queries.totals()
    reg.close()
    if args.json:
        emit_json({"registry": reg.code, "rows": rows})
    else:
        print(table(rows))
    return 0


def _compliance(args: argparse.Namespace) -> int:
    reg = _registry(args)
    rows = reg.queries.compliance()
    reg.close()
    if args.json:
        emit_json({"registry": reg.code, "rows": rows})
    else:
        print(table(rows))
    return 0


def _verify(args: argparse.Namespace) -> int:
    reg = _registry(args)
    report = reg.queries.verify()
    schema = (current_revision(reg.engine), head_revision())
    reg.close()
    if args.json:
        emit_json({**report.to_dict(), "schema": {"current": schema[0], "head": schema[1]}})
    else:
        for check in report.checks:
            print(f"{'ok ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
        print(
            "ledger verified"
            if report.ok
            else "LEDGER INCONSISTENT: do not trade; keep the database as it is and escalate"
        )
    return 0 if report.ok else 1


def _programs(args: argparse.Namespace) -> int:
    reg = _registry(args)
    rows = [p.to_dict() for p in reg.ledger.programs.programs.values()]
    reg.close()
    if args.json:
        emit_json({"programs": rows})
    else:
        shown = [
            {
                "code": r["code"],
                "name": r["name"],
                "compliance_account_may_send": r["compliance_account_may_send"],
                "deduction_unit_types": ",".join(r["deduction_unit_types"]),
                "accepted_unit_types": ",".join(r.get("unit_types", r["deduction_unit_types"])),
                "issuers": ",".join(r.get("issuers", [])) or "any",
                "share_limits": ",".join(f"{k} {v}" for k, v in r.get("share_limits", {}).items())
                or "-",
                "basis": r.get("basis", "mass"),
                "units_per_ton": r["units_per_ton"],
                "control_period_years": r["control_period_years"],
            }
            for r in rows
        ]
        print(table(shown))
    return 0
