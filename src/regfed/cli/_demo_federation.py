"""The demo's second act: three states as real node processes over mutual TLS.

Fresh certificates, one process per registry; issuance and allocation in each state; an
intrastate transfer, interstate transfers in both directions, one refused with its reason, and
one interrupted by killing the destination node (kill -9) and settled after its restart. Then
the federation-wide checks: no serial in two registries, every issued unit accounted for, read
straight from the databases and proved again by the oversight node's reconciliation over the
network (signed snapshots, a signed result).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regfed.local import Federation, LocalFederation, RegistryClient, create_federation
from regfed.local.accounts import fund, open_account
from regfed.local.audit import audit, statuses
from regfed.local.federation import free_base_port
from regfed.local.oversight import OversightClient

from ._demo_credits import credit_scene
from ._output import table

STATES = {"PA": 3_000, "NY": 2_000, "NJ": 1_000}


def _setup_state(federation: Federation, code: str, issued: int) -> dict[str, str]:
    """Issuance into the allocation account, half of it allocated to the first account. Both
    accounts have the local federation's trader1 as primary representative."""
    accounts = {
        "trader1": open_account(federation, code, "trader1", name=f"Keystone Energy ({code})"),
        "trader2": open_account(federation, code, "trader1", name=f"Atlantic Traders ({code})"),
    }
    fund(federation, code, accounts["trader1"], issued // 2, issue=issued)
    return accounts


def run_federation(folder: Path, as_json: bool) -> tuple[bool, dict[str, Any]]:
    def say(text: str) -> None:
        if not as_json:
            print(text, flush=True)

    say("\n== Act 2: three states, three node processes, mutual TLS ==")
    federation = create_federation(
        folder / "federation",
        list(STATES),
        base_port=free_base_port(len(STATES) + 2),
        settings={"redrive_interval": 0.2, "ask_after": 2.0},
    )
    local = LocalFederation(federation)
    transfers: list[dict[str, Any]] = []
    local.start()
    try:
        say("nodes up: " + ", ".join(f"{c} {federation.endpoint(c)}" for c in STATES))
        accounts = {code: _setup_state(federation, code, q) for code, q in STATES.items()}
        for code, q in STATES.items():
            say(f"  {code}: issued {q:,} RGGI 2025 allowances, allocated {q // 2:,} to trader1")

        def move(home: str, src: str, dst: str, quantity: int, what: str) -> dict[str, Any]:
            with RegistryClient(federation, home) as client:
                t = client.propose(src, dst, quantity=quantity, wait_s=60)
            transfers.append({"what": what, **t})
            reason = f" ({t['error_code']}: {t['error_message']})" if t["error_code"] else ""
            say(f"  {what}: {t['status']}{' and settled' if t['settled'] else ''}{reason}")
            return t

        move(
            "PA", accounts["PA"]["trader1"], accounts["PA"]["trader2"], 100, "PA -> PA (intrastate)"
        )
        move("PA", accounts["PA"]["trader1"], accounts["NY"]["trader2"], 250, "PA -> NY")
        move("NY", accounts["NY"]["trader1"], accounts["PA"]["trader2"], 120, "NY -> PA")
        move("NJ", accounts["NJ"]["trader1"], accounts["NY"]["trader1"], 75, "NJ -> NY")
        move("NY", accounts["NY"]["trader2"], accounts["NJ"]["trader2"], 50, "NY -> NJ (PA units)")
        move(
            "NJ",
            accounts["NJ"]["trader1"],
            accounts["PA"]["trader1"],
            10**6,
            "NJ -> PA, more than held (refused)",
        )

        credits = credit_scene(federation, say)
        transfers.append({"what": "PA -> NJ, ERCs with their provenance", **credits["transfer"]})

        say("  PA -> NJ while NJ is down: kill -9 NJ, propose, restart NJ")
        local.kill("NJ")
        with RegistryClient(federation, "PA") as client:
            t = client.propose(accounts["PA"]["trader1"], accounts["NJ"]["trader1"], quantity=40)
            say(f"    proposed {t['transfer_id']}: {t['status']} (blocks escrowed at PA)")
            local.start(["NJ"])
            t = client.wait_settled(t["transfer_id"], 60)
        transfers.append({"what": "PA -> NJ across a restart", **t})
        settled = "settled" if t["settled"] else "NOT settled"
        say(f"    after NJ's restart: {t['status']} and {settled}")
        problems = audit(federation) + credits["problems"]
        agreement = []
        for t in transfers:
            sides = statuses(federation, t["transfer_id"])
            final = {status for status, _settled in sides.values()}
            agreement.append({"transfer": t["what"], "sides": len(sides), "agree": len(final) == 1})
            if len(final) != 1:
                problems.append(f"{t['what']}: registries disagree {sides}")
        holdings = []
        for code in STATES:
            with RegistryClient(federation, code) as client:
                for person in ("trader1",):
                    blocks = client.holdings(accounts[code][person])
                    by_issuer: dict[str, int] = {}
                    for b in blocks:
                        if b.get("state") == "held":
                            n = b["end"] - b["start"] + 1
                            by_issuer[b["issuer"]] = by_issuer.get(b["issuer"], 0) + n
                    holdings.append({"account": accounts[code][person], **by_issuer})
        say("  reconciliation by the oversight node (regfed reconcile) ...")
        with OversightClient(federation, timeout=120.0) as oversight:
            run = oversight.reconcile()
            supply = oversight.query("supply", by=["issuer"])
        if supply.missing:
            problems.append(f"oversight supply is missing {', '.join(supply.missing)}")
        for row in supply.rows:
            where = sum(
                int(row[c]) for c in ("held", "escrowed", "in_transit", "surrendered", "retired")
            )
            if where != row["issued"]:
                problems.append(f"{row['issuer']} issued {row['issued']} but {where} are found")
        result = run.get("result") or {}
        reconciliation = {
            "run_id": run["run_id"],
            "status": run["status"],
            "blocks": result.get("counts", {}).get("blocks", 0),
            "discrepancies": len(result.get("discrepancies", [])),
            "explained": len(result.get("explained", [])),
            "in_transit": len(result.get("in_transit", [])),
        }
        if run["status"] != "completed":
            problems.append(f"reconciliation run {run['run_id']} is {run['status']}")
    finally:
        codes = local.stop()
    ok = not problems and all(t["settled"] for t in transfers)
    if not as_json:
        print("\nTransfers")
        print(
            table(
                [
                    {k: t[k] for k in ("what", "status", "settled", "quantity", "error_code")}
                    for t in transfers
                ]
            )
        )
        print("\ntrader1 holdings by issuing state")
        print(table(holdings, ["account", *STATES]))
        print("\nFederation checks")
        print(
            f"  {'ok  ' if not problems else 'FAIL'} no serial in two registries; every issued "
            "unit accounted for; both sides agree on every transfer"
        )
        print(
            f"  {'ok  ' if reconciliation['status'] == 'completed' else 'FAIL'} oversight node "
            f"EPA's reconciliation run {reconciliation['run_id']}: {reconciliation['status']}, "
            f"{reconciliation['blocks']} blocks in 3 registries, "
            f"{reconciliation['discrepancies']} discrepancies (result signed, verified)"
        )
        print("\nOversight: supply by issuing state (regfed oversight supply --by issuer)")
        print(table(supply.rows))
        for problem in problems:
            print(f"  problem: {problem}")
        print("  nodes stopped: " + ", ".join(f"{c} (exit {rc})" for c, rc in codes.items()))
    return ok, {
        "ok": ok,
        "transfers": transfers,
        "agreement": agreement,
        "holdings": holdings,
        "reconciliation": reconciliation,
        "supply": supply.rows,
        "credits": {k: v for k, v in credits.items() if k != "transfer"},
        "problems": problems,
    }
