"""``regfed demo``: one registry's full life cycle, then three states trading as real processes.

Pennsylvania's registry under RGGI rules (the 2022 snapshot: PA's participation was later
struck down): issuance, a set-aside, allocation, trades by quantity and by serial range, refused
requests with their reasons, an idempotent retry, emissions, compliance deduction with a
shortfall later covered, voluntary retirement; then every account statement, a compliance
summary and the replay check. Then act 2 (``_demo_federation``): PA, NY and NJ as node
processes over mutual TLS. Everything on embedded SQLite in a temporary folder. Exits non-zero
if any invariant fails.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

from regfed.node import (
    Actor,
    DeductCompliance,
    Issue,
    OpenAccount,
    RecordEmissions,
    Registry,
    RegistryError,
    RepresentativeSpec,
    Retire,
    Selection,
    SerialRange,
    StatePurpose,
    Transfer,
    UnitBlock,
    UnitClass,
    open_registry,
)

from ._demo_federation import run_federation
from ._ledger import format_statement
from ._output import emit_json, table


def register(commands: Any) -> None:
    p = commands.add_parser(
        "demo",
        help="a registry's life cycle, then three states trading over mTLS (SQLite)",
        description=__doc__,
    )
    p.add_argument("--dir", help="keep the registry database here (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=run)


class _Story:
    def __init__(self, reg: Registry, as_json: bool) -> None:
        self.reg = reg
        self.as_json = as_json
        self.steps: list[dict[str, Any]] = []
        self.n = 0

    def say(self, text: str) -> None:
        if not self.as_json:
            print(text)

    def do(self, what: str, call: Any, *args: Any) -> Any:
        self.n += 1
        try:
            result = call(*args)
        except RegistryError as error:
            self.steps.append({"step": what, "refused": error.to_dict()})
            self.say(f"  refused  {what}\n           {error.code}: {error.message}")
            return None
        self.steps.append({"step": what, "result": result.to_dict()})
        note = "  (stored answer, nothing changed)" if result.replayed else ""
        self.say(f"  ok       {what}{note}")
        return result

    def op(self, name: str) -> str:
        return "demo-" + re.sub(r"[^A-Za-z0-9.:-]+", "-", name)[:100]


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="regfed-demo-") as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        reg = open_registry(str(folder / "PA.db"), "PA")
        try:
            ledger_ok, ledger_report = _life_cycle(reg, folder, args.json)
        finally:
            reg.close()
        federation_ok, federation_report = run_federation(folder, args.json)
        ok = ledger_ok and federation_ok
        if args.json:
            emit_json({"ok": ok, "ledger": ledger_report, "federation": federation_report})
        elif ok:
            print("\ndemo complete: every invariant holds")
        else:
            print("\nDEMO FAILED: an invariant does not hold (see above)")
        return 0 if ok else 1


def _life_cycle(reg: Registry, folder: Path, as_json: bool) -> tuple[bool, dict[str, Any]]:
    s = _Story(reg, as_json)
    led, admin = reg.ledger, reg.ledger.administrator
    alloc = reg.state_account(StatePurpose.ALLOCATION).label
    s.say(f"regfed demo: registry PA on SQLite at {folder / 'PA.db'}\n")

    def account(name: str, **kw: Any) -> str:
        result = s.do(
            f"open {kw['account_type']} account '{name}'",
            led.open_account,
            OpenAccount(operation_id=s.op(f"open-{name}"), name=name, **kw),
            admin,
        )
        return str(result.detail["account"])

    def rep(person: str, role: str = "primary") -> RepresentativeSpec:
        return RepresentativeSpec(person=person, role=role)

    s.say("Accounts")
    waste_coal = account(
        "Waste coal set-aside", account_type="state", purpose="set-aside", set_aside="waste-coal"
    )
    keystone = account(
        "Keystone Trading",
        account_type="general",
        representatives=(rep("alice"), rep("bob", "alternate")),
    )
    homer = account(
        "Homer City Generating Station",
        account_type="compliance",
        source_id="ORIS-3122",
        representatives=(rep("carol"),),
    )
    brunner = account(
        "Brunner Island",
        account_type="compliance",
        source_id="ORIS-3140",
        representatives=(rep("dave"),),
    )

    s.say("\nIssuance and allocation")
    for vintage in (2024, 2025, 2026):
        s.do(
            f"issue 1,000,000 RGGI allowances of vintage {vintage}",
            led.issue,
            Issue(
                operation_id=s.op(f"issue-{vintage}"),
                program="RGGI",
                unit_type="allowance",
                vintage=vintage,
                quantity=1_000_000,
                to_account=alloc,
            ),
            admin,
        )
    s.do(
        "issue 60,000 into the waste-coal set-aside",
        led.issue,
        Issue(
            operation_id=s.op("issue-set-aside"),
            program="RGGI",
            unit_type="allowance",
            vintage=2024,
            quantity=60_000,
            to_account=waste_coal,
        ),
        admin,
    )

    def move(name: str, src: str, dst: str, actor: Actor, sel: Selection) -> Any:
        return s.do(
            name,
            led.transfer,
            Transfer(operation_id=s.op(name), from_account=src, to_account=dst, selection=sel),
            actor,
        )

    move("allocate 300,000 to Homer City", alloc, homer, admin, Selection(quantity=300_000))
    move("allocate 200,000 to Brunner Island", alloc, brunner, admin, Selection(quantity=200_000))
    move(
        "allocate 20,000 from the set-aside", waste_coal, brunner, admin, Selection(quantity=20_000)
    )
    move(
        "sell 500,000 at auction to Keystone",
        alloc,
        keystone,
        admin,
        Selection(quantity=500_000, vintage=2025),
    )

    s.say("\nTrading")
    move(
        "Brunner Island sells 50,000 to Keystone",
        brunner,
        keystone,
        Actor.person("dave"),
        Selection(quantity=50_000),
    )
    v2025 = UnitClass("PA", "RGGI", "allowance", 2025)
    named = UnitBlock(v2025, SerialRange(400_001, 440_000))
    move(
        "Keystone sells serials 400001-440000 to Homer",
        keystone,
        homer,
        Actor.person("alice"),
        Selection(blocks=(named,)),
    )
    s.say("  (a retry after a timeout reuses the operation id)")
    move(
        "Keystone sells serials 400001-440000 to Homer",
        keystone,
        homer,
        Actor.person("alice"),
        Selection(blocks=(named,)),
    )
    move(
        "carol moves units out of Keystone",
        keystone,
        homer,
        Actor.person("carol"),
        Selection(quantity=10),
    )
    move(
        "Brunner Island sends more than it holds",
        brunner,
        keystone,
        Actor.person("dave"),
        Selection(quantity=10_000_000),
    )
    move(
        "Keystone sends serials it sold already",
        keystone,
        brunner,
        Actor.person("bob"),
        Selection(blocks=(named,)),
    )

    s.say("\nCompliance, control period 2024-2026")
    for acct, tons in ((homer, 380_000), (brunner, 150_000)):
        s.do(
            f"record {tons:,} tons for {acct}",
            led.record_emissions,
            RecordEmissions(
                operation_id=s.op(f"emissions-{acct}"),
                account=acct,
                program="RGGI",
                period="2024-2026",
                tons=tons,
            ),
            admin,
        )
    first = s.do(
        "deduct RGGI 2024-2026",
        led.deduct_compliance,
        DeductCompliance(operation_id=s.op("deduct-1"), program="RGGI", period="2024-2026"),
        admin,
    )
    short = sum(r["shortfall"] for r in first.detail["sources"]) if first else 0
    if short:
        move(
            f"Homer City buys its {short:,} shortfall from Keystone",
            keystone,
            homer,
            Actor.person("bob"),
            Selection(quantity=short),
        )
        s.do(
            "deduct RGGI 2024-2026 again: only the remainder",
            led.deduct_compliance,
            DeductCompliance(operation_id=s.op("deduct-2"), program="RGGI", period="2024-2026"),
            admin,
        )
    s.do(
        "Keystone retires 1,000 voluntarily",
        led.retire,
        Retire(
            operation_id=s.op("retire"),
            from_account=keystone,
            selection=Selection(quantity=1_000),
            reason="voluntary retirement",
        ),
        Actor.person("alice"),
    )

    q = reg.queries
    statements = [q.statement(a, admin) for a in (alloc, waste_coal, keystone, homer, brunner)]
    compliance = q.compliance()
    totals = q.totals()
    report = q.verify()
    summary = {
        "ok": report.ok,
        "registry": reg.code,
        "steps": s.steps,
        "statements": statements,
        "compliance": compliance,
        "totals": totals,
        "verify": report.to_dict(),
    }
    if as_json:
        return report.ok, summary
    print("\nAccount statements")
    for statement in statements:
        print()
        print(format_statement(statement))
    print("\nCompliance summary (RGGI)")
    print(
        table(compliance, ["account", "source", "period", "emissions", "surrendered", "shortfall"])
    )
    print("\nRegistry totals")
    print(
        table(totals, ["program", "vintage", "issued", "held", "surrendered", "retired", "blocks"])
    )
    print("\nInvariants")
    for check in report.checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    print("\nledger: every invariant holds" if report.ok else "\nLEDGER INVARIANT FAILED")
    return report.ok, summary
