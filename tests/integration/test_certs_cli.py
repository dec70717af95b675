"""``regfed certs ...`` and ``regfed directory ...`` as an operator and a script use them: one
JSON object with --json, refusals exit 2 with a code and what to do next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regfed.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> Any:
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    assert code == expect, out
    return json.loads(out)


def test_production_path_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    auth, pa = str(tmp_path / "auth"), str(tmp_path / "pa")
    assert run(capsys, "certs", "authority", auth)["version"] == 1
    request = run(capsys, "certs", "request", pa, "--registry", "pa", "--endpoint", "pa.x:50051")
    assert request["identity"] == "urn:regfed:registry:PA"
    signed = run(capsys, "certs", "sign", pa, "--authority", auth)
    assert signed["ok"] and signed["version"] == 2 and signed["status"] == "active"

    inter = str(tmp_path / "pa" / "intermediate")
    alice = run(capsys, "certs", "trader", "issue", "--intermediate", inter, "--person", "alice")
    assert alice["identity"] == "urn:regfed:trader:PA:alice"
    boss = run(capsys, "certs", "admin", "issue", "--intermediate", inter, "--person", "boss")
    assert boss["identity"] == "urn:regfed:administrator:PA:boss"
    ca = str(tmp_path / "auth" / "ca.pem")
    crl = str(tmp_path / "pa" / "intermediate" / "crl.pem")
    checked = run(capsys, "certs", "check", alice["chain"], "--ca", ca, "--crl", crl)
    assert checked["identity"] == "urn:regfed:trader:PA:alice"

    revoked = run(capsys, "certs", "trader", "revoke", "--intermediate", inter, "--person", "alice")
    assert revoked["revoked"] == [alice["serial"]] and revoked["listed"] == 1
    refused = run(capsys, "certs", "check", alice["chain"], "--ca", ca, "--crl", crl, expect=2)
    assert refused["error"]["code"] == "REVOKED" and refused["error"]["hint"]
    assert run(capsys, "certs", "check", boss["chain"], "--ca", ca, "--crl", crl)["ok"]
    by_serial = run(
        capsys, "certs", "admin", "revoke", "--intermediate", inter, "--serial", boss["serial"]
    )
    assert by_serial["crl_number"] == 3

    shown = run(capsys, "directory", "show", "--authority", auth)
    assert shown["version"] == 2 and shown["members"][0]["status"] == "active"
    assert run(capsys, "directory", "suspend", "PA", "--authority", auth)["version"] == 3
    again = run(capsys, "directory", "suspend", "PA", "--authority", auth, expect=2)
    assert again["error"]["code"] == "STATUS_UNCHANGED"
    assert run(capsys, "directory", "reinstate", "PA", "--authority", auth)["status"] == "active"
    assert run(capsys, "directory", "remove", "pa", "--authority", auth)["version"] == 5
    gone = run(capsys, "directory", "show", "PA", "--authority", auth)
    assert gone["members"] == [
        {**shown["members"][0], "status": "removed"},
    ]
    final = run(capsys, "directory", "reinstate", "PA", "--authority", auth, expect=2)
    assert final["error"]["code"] == "MEMBER_REMOVED" and "--readmit" in final["error"]["hint"]


def test_local_federation_and_intermediate_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fed = str(tmp_path / "fed")
    summary = run(capsys, "certs", "init", fed, "--registries", "PA,NY")
    pa = summary["members"][0]
    assert pa["administrator"]["identity"] == "urn:regfed:administrator:PA:admin"
    assert pa["trader"]["identity"] == "urn:regfed:trader:PA:trader1"
    assert Path(pa["trader"]["chain"]).exists() and Path(pa["crl"]).exists()
    assert "trader" not in summary["members"][-1]  # the oversight node has no people

    bob = run(
        capsys,
        "certs",
        "trader",
        "issue",
        "--authority",
        fed,
        "--registry",
        "NY",
        "--person",
        "bob",
    )
    assert bob["chain"] == str(tmp_path / "fed" / "NY" / "traders" / "bob" / "chain.pem")
    twice = run(
        capsys,
        "certs",
        "trader",
        "issue",
        "--authority",
        fed,
        "--registry",
        "NY",
        "--person",
        "bob",
        expect=1,
    )
    assert twice["error"]["code"] == "FILE_EXISTS"
    made = run(capsys, "certs", "intermediate", "--authority", fed, "--registry", "NJ")
    assert made["folder"] == str(tmp_path / "fed" / "NJ" / "intermediate")
    exists = run(capsys, "certs", "intermediate", "--authority", fed, "--registry", "NJ", expect=1)
    assert exists["error"]["code"] == "FILE_EXISTS"
    wrong = run(
        capsys,
        "certs",
        "trader",
        "issue",
        "--intermediate",
        made["folder"],
        "--registry",
        "PA",
        "--person",
        "eve",
        expect=1,
    )
    assert wrong["error"]["code"] == "INVALID"
    nobody = run(
        capsys,
        "certs",
        "trader",
        "revoke",
        "--authority",
        fed,
        "--registry",
        "PA",
        "--person",
        "nobody",
        expect=1,
    )
    assert nobody["error"]["code"] == "INVALID"
    missing = run(capsys, "directory", "show", "--authority", str(tmp_path / "nowhere"), expect=1)
    assert missing["error"]["code"] == "NOT_FOUND"


def test_refusals_in_plain_text_say_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    auth = str(tmp_path / "auth")
    assert main(["certs", "authority", auth]) == 0
    assert (
        main(["certs", "request", str(tmp_path / "pa"), "--registry", "PA", "--endpoint", "h:1"])
        == 0
    )
    request = tmp_path / "pa" / "request.json"
    signed = json.loads(request.read_text())
    signed["request"]["endpoint"] = "evil:1"
    request.write_text(json.dumps(signed))
    capsys.readouterr()
    assert main(["certs", "sign", str(tmp_path / "pa"), "--authority", auth]) == 2
    err = capsys.readouterr().err
    assert "REQUEST_BAD_SIGNATURE" in err and "what to do:" in err
    assert main(["directory", "show", "--authority", auth]) == 0
    assert "directory version 1" in capsys.readouterr().out
