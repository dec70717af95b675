"""The ``regfed`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy import exc as sa_exc

from regfed import __version__
from regfed.local import TransferFailed
from regfed.node import RegistryError

from . import (
    _bench,
    _certs,
    _credits,
    _demo,
    _import,
    _ledger,
    _node,
    _oversight,
    _reconcile,
    _report,
    _scenario,
    _sim,
    _status,
    _transfer,
)
from ._output import EXIT_FAILED, report_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regfed",
        description="A federation of emissions-allowance registries.",
    )
    parser.add_argument("--version", action="version", version=f"regfed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo.register(commands)
    _ledger.register(commands)
    _credits.register(commands)
    _bench.register(commands)
    _sim.register(commands)
    _certs.register(commands)
    _node.register(commands)
    _oversight.register(commands)
    _reconcile.register(commands)
    _report.register(commands)
    _transfer.register(commands)
    _status.register(commands)
    _scenario.register(commands)
    _import.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except RegistryError as error:
        return report_error(error, bool(getattr(args, "json", False)))
    except TransferFailed as error:
        print(f"error: {error.code} ({error.status}): {error.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except sa_exc.OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        print(f"error: cannot use the database: {reason}", file=sys.stderr)
        print(
            "  what to do: check the URL (--db, --postgres) and that the server is running",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
