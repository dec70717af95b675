"""``regfed certs ...`` and ``regfed directory ...``: federation credentials and membership."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from regfed.certs.directory import Directory, DirectoryError, MemberStatus
from regfed.certs.identity import Role
from regfed.certs.intermediate import (
    RegistryAuthority,
    issue_person,
    load_crl,
    revoke,
    serials_of,
)
from regfed.certs.local import (
    create_authority,
    create_intermediate,
    init_federation,
    intermediate_folder,
)
from regfed.certs.publish import current, set_status
from regfed.certs.requests import RequestRefused, make_request, sign_request
from regfed.certs.verify import CertificateRefused, identity_of_peer_chain

from ._output import EXIT_FAILED, EXIT_REFUSED, emit_json, table

Handler = Callable[[argparse.Namespace], int]

# What to do next, for every refusal a certs or directory command can print.
HINTS = {
    "FILE_EXISTS": "use a fresh folder; existing keys are never overwritten",
    "NOT_FOUND": "check the path",
    "INVALID": "check the arguments (regfed certs --help)",
    "MEMBER_REMOVED": (
        "a removed member is not reinstated; to admit it again, it makes a new request "
        "(`regfed certs request`) and the authority signs it with --readmit"
    ),
    "KEY_REUSED": "the state makes a new request (`regfed certs request`) in a fresh folder",
    "UNKNOWN_MEMBER": "see the members with `regfed directory show --authority DIR`",
    "STATUS_UNCHANGED": "nothing to publish: the member already has that status",
    "ROLE_MISMATCH": "a code keeps its role; request with the role the directory has",
    "DIRECTORY_BAD_SIGNATURE": "this directory.json was not signed by this folder's CA",
    "DIRECTORY_MALFORMED": "restore directory.json from the authority's history/ folder",
    "DIRECTORY_STALE": "use the newest directory the authority published",
    "REQUEST_MALFORMED": "create the request again with `regfed certs request`",
    "REQUEST_BAD_SIGNATURE": "the request was altered after the state signed it; ask for a new one",
    "CSR_BAD_SIGNATURE": "the CSR was altered or damaged; ask the state for a new request",
    "CSR_WRONG_KEY": "create the request with `regfed certs request` (ECDSA P-256 keys)",
    "CSR_IDENTITY": (
        "the authority signs one registry or oversight identity per node; traders and "
        "administrators get certificates from their registry (`regfed certs trader issue`)"
    ),
    "CSR_MISMATCH": "the CSRs do not match request.json; ask the state for a new request",
    "MALFORMED_CHAIN": "pass the PEM file the client presents (chain.pem: leaf then intermediate)",
    "NOT_A_CLIENT_CERTIFICATE": "use a leaf certificate issued for TLS client authentication",
    "NO_IDENTITY": "issue a new certificate with `regfed certs trader issue` or `admin issue`",
    "NOT_FROM_FEDERATION_CA": "the chain must lead to this federation's ca.pem (include chain.pem)",
    "WRONG_ISSUER": "people's certificates come from their registry's intermediate",
    "WRONG_REGISTRY_INTERMEDIATE": "issue the certificate from the person's own registry",
    "EXPIRED": "issue a new certificate",
    "REVOKED": "this certificate was revoked; its holder needs a new one",
}


def register(commands: Any) -> None:
    certs = commands.add_parser("certs", help="federation certificates and keys")
    sub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "init",
        help="create a local federation's CA, node certificates, signing keys, directory, "
        "and each registry's intermediate, administrator and trader",
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--registries", required=True, help="comma-separated codes, e.g. PA,NY,NJ")
    p.add_argument("--oversight", default="EPA", help="the oversight node's code")
    _common(p, _init)

    p = sub.add_parser("authority", help="create a federation authority with an empty directory")
    p.add_argument("dir", type=Path)
    _common(p, _authority)

    p = sub.add_parser(
        "request", help="a state's keys, CSRs and signed membership request, in its own folder"
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--registry", required=True, help="the state's code, e.g. PA")
    p.add_argument("--endpoint", required=True, help="HOST:PORT where its node listens")
    p.add_argument("--oversight", action="store_true", help="request for the oversight node")
    _common(p, _request)

    p = sub.add_parser("sign", help="sign a state's request and publish a new directory version")
    p.add_argument("request_dir", type=Path)
    p.add_argument("--authority", required=True, type=Path, help="folder with ca.pem, ca.key")
    p.add_argument("--out", type=Path, help="where to write the certificates (default: request)")
    p.add_argument("--readmit", action="store_true", help="admit a removed member again")
    _common(p, _sign)

    p = sub.add_parser("intermediate", help="create a registry's intermediate CA (local path)")
    p.add_argument("--authority", required=True, type=Path, help="folder with ca.pem, ca.key")
    p.add_argument("--registry", required=True)
    _common(p, _intermediate)

    for role, name in ((Role.TRADER, "trader"), (Role.ADMINISTRATOR, "admin")):
        people = sub.add_parser(name, help=f"issue or revoke {role.value} certificates")
        actions = people.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
        p = actions.add_parser("issue", help=f"a key and certificate chain for a {role.value}")
        _intermediate_args(p)
        p.add_argument("--person", required=True)
        p.add_argument("--out", type=Path, help="default: <registry>/<role>s/<person>")
        _common(p, functools.partial(_issue, role))
        p = actions.add_parser("revoke", help=f"revoke a {role.value}'s certificates")
        _intermediate_args(p)
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--person", help="every certificate issued to this person")
        who.add_argument("--serial", help="one certificate, by its serial number (hex)")
        _common(p, functools.partial(_revoke, role))

    p = sub.add_parser("check", help="check a client chain as a gRPC port does")
    p.add_argument("chain", type=Path, help="PEM: the leaf, with its intermediate if any")
    p.add_argument("--ca", required=True, type=Path, help="the federation's ca.pem")
    p.add_argument("--crl", type=Path, action="append", default=[], help="a crl.pem (repeat)")
    _common(p, _check)

    directory = commands.add_parser("directory", help="the signed federation directory")
    dsub = directory.add_subparsers(dest="directory_command", required=True, metavar="ACTION")
    p = dsub.add_parser("show", help="the members of the published directory")
    p.add_argument("code", nargs="?", help="one member only")
    p.add_argument("--authority", required=True, type=Path, help="folder with ca.pem")
    _common(p, _show)
    for verb, status in (
        ("suspend", MemberStatus.SUSPENDED),
        ("reinstate", MemberStatus.ACTIVE),
        ("remove", MemberStatus.REMOVED),
    ):
        p = dsub.add_parser(verb, help=f"{verb} a member: publishes a new directory version")
        p.add_argument("code")
        p.add_argument("--authority", required=True, type=Path, help="folder with ca.key")
        _common(p, functools.partial(_set_status, status))


def _common(parser: argparse.ArgumentParser, handler: Handler) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_refusals(handler))


def _intermediate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="with --authority: the registry's code")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--authority", type=Path, help="local federation folder (with --registry)")
    where.add_argument("--intermediate", type=Path, help="the intermediate's own folder")


def _refusals(handler: Handler) -> Handler:
    """Typed refusals exit 2 and say what to do next; a missing or existing file exits 1."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (CertificateRefused, RequestRefused) as error:
            return _report(args, error.code, error.message, EXIT_REFUSED)
        except DirectoryError as error:
            return _report(args, error.code, str(error).partition(": ")[2], EXIT_REFUSED)
        except FileExistsError as error:
            return _report(args, "FILE_EXISTS", str(error), EXIT_FAILED)
        except FileNotFoundError as error:
            message = f"{error.strerror}: {error.filename}"
            return _report(args, "NOT_FOUND", message, EXIT_FAILED, _missing(str(error.filename)))
        except ValueError as error:
            return _report(args, "INVALID", str(error), EXIT_FAILED)

    return run


# A missing file's name says which step was skipped.
MISSING = {
    "ca.key": "--authority is the folder holding ca.pem and ca.key (`regfed certs authority`)",
    "ca.pem": "--authority is the folder holding ca.pem and ca.key (`regfed certs authority`)",
    "directory.json": "no directory published here yet: `regfed certs authority DIR` makes one",
    "request.json": "the state makes its request first: `regfed certs request DIR ...`",
    "tls.csr": "the state makes its request first: `regfed certs request DIR ...`",
    "intermediate.csr": "the state makes its request first: `regfed certs request DIR ...`",
    "intermediate.key": (
        "no intermediate there: `regfed certs intermediate --authority DIR --registry CODE`, "
        "or the request folder's intermediate/ once the authority has signed it"
    ),
    "intermediate.pem": "the authority has not signed this registry's request yet (`certs sign`)",
}


def _missing(filename: str) -> str:
    return MISSING.get(Path(filename).name, HINTS["NOT_FOUND"])


def _report(
    args: argparse.Namespace, code: str, message: str, status: int, hint: str | None = None
) -> int:
    hint = hint or HINTS.get(code, "")
    if args.json:
        emit_json({"ok": False, "error": {"code": code, "message": message, "hint": hint}})
    else:
        print(f"error: {code}: {message}", file=sys.stderr)
        if hint:
            print(f"  what to do: {hint}", file=sys.stderr)
    return status


def _code(value: str) -> str:
    return value.strip().upper()


def _init(args: argparse.Namespace) -> int:
    codes = [_code(c) for c in args.registries.split(",") if c.strip()]
    summary = init_federation(args.dir, codes, _code(args.oversight))
    if args.json:
        emit_json(summary)
        return 0
    print(f"federation credentials in {summary['folder']} (private keys 0600: never commit)")
    print(table(summary["members"], ["code", "role", "endpoint", "key_id"]))
    print(f"signed directory: {summary['directory']} (version {summary['version']})")
    people = [
        {"registry": m["code"], "identity": person["identity"], "chain": person["chain"]}
        for m in summary["members"]
        for person in (m.get("administrator"), m.get("trader"))
        if person
    ]
    if people:
        print("people (each with tls.key beside its chain.pem):")
        print(table(people))
    return 0


def _authority(args: argparse.Namespace) -> int:
    summary = create_authority(args.dir)
    if args.json:
        emit_json(summary)
    else:
        print(f"federation authority in {summary['folder']} (ca.key 0600: keep it offline)")
        print(f"empty signed directory: {summary['directory']} (version {summary['version']})")
        print("next: each state runs `regfed certs request`, then `regfed certs sign` here")
    return 0


def _request(args: argparse.Namespace) -> int:
    role = Role.OVERSIGHT if args.oversight else Role.REGISTRY
    summary = make_request(args.dir, _code(args.registry), args.endpoint, role)
    if args.json:
        emit_json({"ok": True, **summary})
    else:
        print(f"membership request for {summary['identity']} at {summary['endpoint']}")
        print("send to the federation authority (public):")
        for path in summary["send"]:
            print(f"  {path}")
        print("keep here, never send (0600):")
        for path in summary["keep"]:
            print(f"  {path}")
        print(f"next: the authority runs `regfed certs sign {summary['folder']} --authority DIR`")
    return 0


def _sign(args: argparse.Namespace) -> int:
    summary = sign_request(args.request_dir, args.authority, args.out, readmit=args.readmit)
    if args.json:
        emit_json(summary)
    else:
        print(f"signed {summary['identity']} at {summary['endpoint']} ({summary['status']})")
        for path in summary["written"]:
            print(f"  wrote {path}")
        print(f"published {summary['directory']} version {summary['version']}")
    return 0


def _intermediate(args: argparse.Namespace) -> int:
    folder = create_intermediate(args.authority, _code(args.registry))
    summary = {
        "ok": True,
        "registry": _code(args.registry),
        "folder": str(folder),
        "certificate": str(folder / "intermediate.pem"),
        "crl": str(folder / "crl.pem"),
    }
    if args.json:
        emit_json(summary)
    else:
        print(f"{summary['registry']} intermediate CA in {folder} (intermediate.key 0600)")
        print(f"revocation list: {summary['crl']} (load it on {summary['registry']}'s node)")
    return 0


def _intermediate_folder(args: argparse.Namespace) -> Path:
    if args.intermediate is not None:
        folder: Path = args.intermediate
        if args.registry:
            served = RegistryAuthority.load(folder).registry
            if served != _code(args.registry):
                raise ValueError(f"{folder} is the intermediate of {served}, not {args.registry}")
        return folder
    if not args.registry:
        raise ValueError("--authority needs --registry CODE (or give --intermediate DIR)")
    return intermediate_folder(args.authority, _code(args.registry))


def _issue(role: Role, args: argparse.Namespace) -> int:
    creds = issue_person(_intermediate_folder(args), role, args.person, args.out)
    summary = {"ok": True, **creds.to_dict()}
    if args.json:
        emit_json(summary)
    else:
        print(f"issued {summary['identity']} (serial {summary['serial']})")
        print(f"  present: {summary['chain']} with key {summary['key']} (0600)")
    return 0


def _revoke(role: Role, args: argparse.Namespace) -> int:
    folder = _intermediate_folder(args)
    if args.serial:
        try:
            serials = [int(args.serial, 16)]
        except ValueError:
            raise ValueError(f"--serial {args.serial!r} is not a hexadecimal number") from None
    else:
        serials = serials_of(folder, role, args.person)
        if not serials:
            raise ValueError(f"{folder} issued no {role.value} certificate to {args.person!r}")
    crl = revoke(folder, serials)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    revoked = [f"{s:x}" for s in serials]
    summary = {
        "ok": True,
        "revoked": revoked,
        "crl": str(folder / "crl.pem"),
        "crl_number": number,
        "listed": len(crl),
    }
    if args.json:
        emit_json(summary)
    else:
        print(f"revoked {', '.join(revoked)}")
        print(f"signed revocation list {summary['crl']} (number {number}, {len(crl)} entries)")
        print("  next: give the new crl.pem to the registry's node; it refuses them from now on")
    return 0


def _check(args: argparse.Namespace) -> int:
    ca = x509.load_pem_x509_certificate(args.ca.read_bytes())
    identity = identity_of_peer_chain(
        args.chain.read_bytes(), ca, [load_crl(path) for path in args.crl]
    )
    summary = {
        "ok": True,
        "identity": identity.uri,
        "role": identity.role.value,
        "registry": identity.registry,
        "person": identity.person,
    }
    if args.json:
        emit_json(summary)
    else:
        print(f"accepted: {identity.uri}")
    return 0


def _member_rows(directory: Directory) -> list[dict[str, Any]]:
    return [
        {
            "code": m.code,
            "role": m.role.value,
            "status": m.status.value,
            "endpoint": m.endpoint,
            "key_id": m.key_id,
        }
        for m in directory.members
    ]


def _show(args: argparse.Namespace) -> int:
    if not (args.authority / "directory.json").exists():
        raise FileNotFoundError(2, "no published directory", str(args.authority / "directory.json"))
    directory = current(args.authority)
    rows = _member_rows(directory)
    if args.code:
        rows = [r for r in rows if r["code"] == _code(args.code)]
        if not rows:
            raise DirectoryError(
                "UNKNOWN_MEMBER", f"{args.code} is not in directory v{directory.version}"
            )
    if args.json:
        emit_json({"version": directory.version, "members": rows})
    else:
        print(f"directory version {directory.version} ({args.authority / 'directory.json'})")
        print(table(rows))
    return 0


def _set_status(status: MemberStatus, args: argparse.Namespace) -> int:
    code = _code(args.code)
    directory = set_status(args.authority, code, status)
    summary = {
        "ok": True,
        "code": code,
        "status": status.value,
        "version": directory.version,
        "directory": str(args.authority / "directory.json"),
    }
    if args.json:
        emit_json(summary)
    else:
        print(f"{code} is now {status.value}: published directory version {directory.version}")
        print("  next: distribute directory.json; nodes refuse any older version from now on")
    return 0
