"""``regfed node check`` and ``regfed oversight check``: everything a node needs, checked
without starting it.

Each check has a name and passes, fails with what to fix, or is skipped because one it needs
failed (no point reporting "key does not match" when the key did not load). Nothing is written
and, unless asked, no database connection is made: the check runs in a container health gate
or a CI job before anything else exists. The oversight node is checked the same way, as the
oversight member (role ``oversight``), without the registry's own steps (database, programs,
revocation lists) and with its own: ``runs`` says where its run table is and when it reconciles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from regfed.certs.directory import Directory, DirectoryError, MemberStatus
from regfed.certs.identity import Role
from regfed.certs.intermediate import load_crl
from regfed.certs.requests import split_endpoint
from regfed.certs.verify import CertificateRefused, check_client
from regfed.node import RegistryError, program_catalog
from regfed.node.storage.engine import SUPPORTED_BACKENDS, normalize_url
from regfed.oversight.config import OversightConfig

from .daemon import NodeConfig
from .logs import FORMATS as LOG_FORMATS
from .metrics import parse_listen


class Problem(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class Check:
    name: str
    status: str  # "ok", "problem" or "skipped"
    detail: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": self.status, **self._text()}

    def _text(self) -> dict[str, str]:
        return {"detail": self.detail, "hint": self.hint} if self.hint else {"detail": self.detail}


@dataclass
class Preflight:
    config: NodeConfig | OversightConfig
    connect: bool = False
    checks: list[Check] = field(default_factory=list)
    loaded: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def code(self) -> str:
        """The member code the node's certificate and the directory must name."""
        if isinstance(self.config, OversightConfig):
            return self.config.code
        return self.config.registry

    @property
    def role(self) -> Role:
        return Role.OVERSIGHT if isinstance(self.config, OversightConfig) else Role.REGISTRY

    def run(self) -> list[Check]:
        steps: list[tuple[str, tuple[str, ...], Callable[[], str]]] = [
            ("listen", (), self._listen),
            ("timings", (), self._timings),
            ("observability", (), self._observability),
            ("ca", (), self._ca),
            ("certificate", (), self._certificate),
            ("tls_key", (), self._tls_key),
            ("tls_key_matches_certificate", ("certificate", "tls_key"), self._key_matches),
            (f"certificate_names_{self.role.value}", ("ca", "certificate"), self._identity),
            ("signing_key", (), self._signing_key),
            ("directory", ("ca",), self._directory),
            ("directory_lists_node", ("directory", "certificate", "signing_key"), self._listed),
        ]
        if self.role is Role.REGISTRY:
            steps += [
                ("crls", (), self._crls),
                ("database", (), self._database),
                ("programs", (), self._programs),
            ]
        else:
            steps.append(("runs", (), self._runs))
        for name, needs, step in steps:
            failed = [n for n in needs if n not in self.loaded]
            if failed:
                self.checks.append(Check(name, "skipped", f"needs {', '.join(failed)} first"))
                continue
            try:
                detail = step()
            except Problem as problem:
                self.checks.append(Check(name, "problem", problem.message, problem.hint))
            else:
                self.loaded.setdefault(name, True)
                self.checks.append(Check(name, "ok", detail))
        return self.checks

    def _read(self, what: str, key: str) -> bytes:
        path = getattr(self.config, key)
        try:
            data: bytes = path.read_bytes()
        except OSError as error:
            raise Problem(
                f"cannot read the {what} {path}: {error.strerror}",
                f"set {key} (file) or REGFED_{key.upper()} (environment) to the right file; "
                "`regfed certs request` and `regfed certs sign` make them",
            ) from None
        return data

    def _listen(self) -> str:
        try:
            split_endpoint(self.config.listen)
        except ValueError as error:
            raise Problem(str(error), 'listen is HOST:PORT, e.g. "0.0.0.0:50051"') from None
        return self.config.listen

    def _programs(self) -> str:
        """The program rules file, if one is set, reads as the node will read it."""
        assert isinstance(self.config, NodeConfig)
        try:
            catalog = program_catalog(self.config.programs)
        except RegistryError as error:
            raise Problem(
                error.message,
                "programs names a JSON list of program rules (docs/ledger.md), or leave it unset "
                "for the built-in rules",
            ) from None
        source = "built-in" if self.config.programs is None else str(self.config.programs)
        return f"{len(catalog.programs)} programs ({source}): {', '.join(sorted(catalog.programs))}"

    def _observability(self) -> str:
        """The log format is one the node writes; the metrics address parses (and says when it
        reaches beyond loopback: plain HTTP, no authentication)."""
        if self.config.log_format not in LOG_FORMATS:
            raise Problem(
                f"log_format {self.config.log_format!r} is not one of {', '.join(LOG_FORMATS)}",
                'log_format = "text" for people, "json" for a log shipper',
            )
        if self.config.metrics_listen is None:
            return f"log {self.config.log_format}, metrics off"
        try:
            host, port = parse_listen(self.config.metrics_listen)
        except ValueError as error:
            raise Problem(
                str(error), 'metrics_listen = "127.0.0.1:9464" (or just a port)'
            ) from None
        reach = "loopback" if host in {"127.0.0.1", "::1", "localhost"} else "beyond loopback"
        return f"log {self.config.log_format}, metrics on {host}:{port} ({reach})"

    def _timings(self) -> str:
        """Every number of seconds (NodeConfig's floats) is positive; a grace period may be 0
        (stop at once), and so may the verdict poll (never ask)."""
        numbers = {k: v for k, v in self.config.__dict__.items() if isinstance(v, float)}
        may_be_zero = {"shutdown_grace", "verdict_poll"}
        wrong = [
            f"{k} = {v}" for k, v in numbers.items() if v < 0 or (v == 0 and k not in may_be_zero)
        ]
        if wrong:
            raise Problem(
                "not a positive number of seconds: " + ", ".join(wrong),
                "timings are seconds, e.g. shutdown_grace = 10 (docs/operations.md)",
            )
        return ", ".join(f"{k} {v:g} s" for k, v in numbers.items())

    def _ca(self) -> str:
        ca = _one_certificate(self._read("CA certificate", "ca"), "ca", self.config.ca)
        if not _is_ca(ca):
            raise Problem(
                f"{self.config.ca} is not a CA certificate",
                "ca is the federation's ca.pem, the same file on every node",
            )
        self.loaded["ca"] = ca
        return ca.subject.rfc4514_string()

    def _certificate(self) -> str:
        data = self._read("TLS certificate chain", "certificate")
        try:
            chain = x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise Problem(
                f"{self.config.certificate} is not PEM certificates: {error}",
                "certificate is the node's tls.pem written by `regfed certs sign`",
            ) from None
        self.loaded["certificate"] = chain
        return f"{len(chain)} certificate(s), expires {chain[0].not_valid_after_utc:%Y-%m-%d}"

    def _tls_key(self) -> str:
        data = self._read("TLS private key", "key")
        try:
            key = serialization.load_pem_private_key(data, None)
        except (ValueError, TypeError) as error:
            raise Problem(
                f"{self.config.key} is not an unencrypted PEM private key: {error}",
                "key is the node's tls.key (0600) made with its request",
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise Problem(f"{self.config.key} is not an ECDSA key", "use the node's tls.key")
        self.loaded["tls_key"] = key
        return "ECDSA " + key.curve.name

    def _key_matches(self) -> str:
        leaf: x509.Certificate = self.loaded["certificate"][0]
        key: ec.EllipticCurvePrivateKey = self.loaded["tls_key"]
        if _public_der(key.public_key()) != _public_der(leaf.public_key()):
            raise Problem(
                f"{self.config.key} is not the key of the certificate in {self.config.certificate}",
                "key and certificate must come from the same request folder (tls.key, tls.pem)",
            )
        return "the key is the certificate's"

    def _identity(self) -> str:
        chain: list[x509.Certificate] = self.loaded["certificate"]
        try:
            identity = check_client(chain, self.loaded["ca"])
        except CertificateRefused as refused:
            raise Problem(
                f"{refused.code}: {refused.message}",
                "the node's certificate must be signed by this federation's CA (`regfed certs "
                "sign` with the federation authority) and be current",
            ) from None
        if identity.role not in (Role.REGISTRY, Role.OVERSIGHT):
            raise Problem(
                f"the certificate names {identity.uri}, a person, not a node",
                "use the node's tls.pem, not a trader's or administrator's",
            )
        if self.role is Role.OVERSIGHT and identity.role is not Role.OVERSIGHT:
            raise Problem(
                f"the certificate names {identity.uri}, not the oversight node "
                f"urn:regfed:oversight:{self.code}",
                "use the tls.pem of a request made with `regfed certs request --oversight`",
            )
        if identity.registry != self.code:
            key = "registry" if self.role is Role.REGISTRY else "code"
            raise Problem(
                f"the certificate names {identity.uri}, but this node is {self.role.value} "
                f"{self.code}",
                f"point certificate and key at this {self.role.value} node's files, or fix {key}",
            )
        return identity.uri

    def _signing_key(self) -> str:
        data = self._read("signing key", "signing_key")
        try:
            key = serialization.load_pem_private_key(data, None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise Problem(
                f"{self.config.signing_key} is not an Ed25519 private key",
                "signing_key is the node's signing.key made with its request",
            )
        self.loaded["signing_key"] = key
        return "Ed25519"

    def _directory(self) -> str:
        raw = self._read("signed directory", "directory")
        try:
            directory = Directory.verify(json.loads(raw), self.loaded["ca"])
        except DirectoryError as error:
            raise Problem(
                str(error),
                "use the directory.json the federation authority published with this ca.pem",
            ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise Problem(
                f"{self.config.directory} is not a signed directory: {error}",
                "directory is the authority's directory.json",
            ) from None
        self.loaded["directory"] = directory
        return f"version {directory.version}, {len(directory.members)} member(s)"

    def _listed(self) -> str:
        directory: Directory = self.loaded["directory"]
        member = directory.member(self.code)
        if member is None:
            raise Problem(
                f"{self.role.value} {self.code} is not in directory version {directory.version}",
                "the authority signs this node's request (`regfed certs sign`), which adds it",
            )
        if member.role is not self.role:
            raise Problem(
                f"directory version {directory.version} lists {member.code} as a "
                f"{member.role.value} member, not {self.role.value}",
                "check code (or registry): the oversight node and the states have their own codes",
            )
        key: ed25519.Ed25519PrivateKey = self.loaded["signing_key"]
        if _public_der(key.public_key()) != _public_der(member.public_key):
            raise Problem(
                f"{self.config.signing_key} is not the signing key the directory lists for "
                f"{member.code} (key id {member.key_id})",
                "use the signing.key from the request the authority signed, or have the new "
                "request signed",
            )
        leaf: x509.Certificate = self.loaded["certificate"][0]
        listed = x509.load_pem_x509_certificate(member.certificate_pem.encode())
        if listed != leaf:
            raise Problem(
                f"{self.config.certificate} is not the certificate the directory lists for "
                f"{member.code}",
                "use the tls.pem the authority wrote with this directory version",
            )
        if member.status is not MemberStatus.ACTIVE:
            raise Problem(
                f"{member.code} is {member.status.value} in directory version {directory.version}",
                "peers refuse a member that is not active; ask the federation authority",
            )
        return f"{member.code} active, key id {member.key_id}, endpoint {member.endpoint}"

    def _crls(self) -> str:
        assert isinstance(self.config, NodeConfig)
        if not self.config.crls:
            return "none configured (no person's certificate can be revoked at this node)"
        present = []
        for path in self.config.crls:
            if not path.exists():
                continue  # the node reads a list when it appears: nothing revoked yet
            try:
                load_crl(path)
            except (ValueError, OSError) as error:
                raise Problem(
                    f"{path} is not a revocation list: {error}",
                    "crls are the registry intermediates' crl.pem files",
                ) from None
            present.append(str(path))
        absent = len(self.config.crls) - len(present)
        return f"{len(present)} loaded" + (f", {absent} not there yet" if absent else "")

    def _runs(self) -> str:
        """Where the oversight node keeps its runs and when it reconciles (both were refused at
        load if unusable: this says what was understood)."""
        assert isinstance(self.config, OversightConfig)
        shown = make_url(normalize_url(self.config.database)).render_as_string(hide_password=True)
        config = self.config
        when = (
            f"nightly at {config.reconcile_at} {config.reconcile_timezone}"
            if config.reconcile_nightly
            else "no nightly run (reconcile_nightly = false): on demand only"
        )
        return f"runs in {shown} (not connected); {when}"

    def _database(self) -> str:
        assert isinstance(self.config, NodeConfig)
        hint = "database is a SQLAlchemy URL: postgresql://user@host/dbname or sqlite:///path.db"
        try:
            url = make_url(normalize_url(self.config.database))
        except RegistryError as error:  # the engine's own refusal of another database
            backend = error.details.get("backend")
            if backend is None:
                raise Problem(error.message, hint) from None
            supported = ", ".join(SUPPORTED_BACKENDS)
            raise Problem(f"database dialect {backend!r} is not one of {supported}", hint) from None
        except (ArgumentError, ValueError) as error:  # ValueError: e.g. a port not a number
            raise Problem(f"database URL not accepted: {error}", hint) from None
        shown = url.render_as_string(hide_password=True)
        if not self.connect:
            return f"{shown} (not connected; --connect tries)"
        try:
            engine = create_engine(url)
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise Problem(
                f"cannot connect to {shown}: {reason}",
                "check the server is up and the URL's user, host and database",
            ) from None
        return f"{shown} (connected)"


def _one_certificate(data: bytes, key: str, path: object) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise Problem(
            f"{path} is not a PEM certificate: {error}", f"{key} is the federation's ca.pem"
        ) from None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der
