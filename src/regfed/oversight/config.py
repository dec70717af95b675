"""The oversight node's configuration, loaded like a registry node's (one TOML file and
``REGFED_<FIELD>`` variables, :func:`regfed.gateway.config.load_config` with this schema).

Values the loader's types cannot judge (a database URL, a time of day, a time zone) are checked
here, when the dataclass is made: :class:`SettingRefused` names the key and what to write, and
the loader reports it with where the value came from."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, time, tzinfo
from pathlib import Path
from typing import Any

from regfed.node.domain.errors import RegistryError
from regfed.node.storage.engine import normalize_url

#: 24-hour ``HH:MM``; one spelling, so ``02:00`` in a file means what ``REGFED_RECONCILE_AT``
#: says.
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class SettingRefused(ValueError):
    """A setting's value has the right type but cannot be used; the message says what to write."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class OversightConfig:
    #: The oversight member's code in the directory, e.g. ``EPA``; its certificate names
    #: ``urn:regfed:oversight:<code>``.
    code: str
    listen: str
    ca: Path
    certificate: Path
    key: Path
    #: Ed25519: it will sign reconciliation results; the directory lists its public key.
    signing_key: Path
    directory: Path
    #: The node's own database (its run table, :mod:`regfed.oversight.runs`), a SQLAlchemy URL:
    #: ``sqlite:///runs.db`` (beside the file when relative) or ``postgresql://...``. Never a
    #: registry's. Required: the one-run-a-day rule survives restarts only if it is kept.
    database: str
    #: Where Prometheus metrics are served over plain HTTP (a bare port means loopback);
    #: None: not served.
    metrics_listen: str | None = None
    #: The log on stderr: ``text`` for people, ``json`` for one object per line.
    log_format: str = "text"
    #: Seconds a stopping node (SIGTERM) gives calls in flight before cancelling them.
    shutdown_grace: float = 10.0
    reflection: bool = False
    #: The nightly reconciliation's local time of day, ``HH:MM`` (24-hour) in
    #: ``reconcile_timezone``.
    reconcile_at: str = "02:00"
    #: An IANA time zone name (``America/New_York``), or ``UTC``.
    reconcile_timezone: str = "UTC"
    #: False: no scheduled run; on-demand runs only.
    reconcile_nightly: bool = True
    #: Seconds a transfer may stay in transit (escrowed at its source, pinned at its
    #: destination) before reconciliation reports it (IN_TRANSIT_TOO_LONG); default 24 hours.
    settlement_limit: float = 86_400.0
    #: Seconds to wait for a registry to accept a connection before a run ends incomplete.
    registry_timeout: float = 10.0

    def __post_init__(self) -> None:
        # Each refused here rather than at the first night: a node must not start with a
        # schedule it cannot keep.
        parse_time_of_day(self.reconcile_at)
        parse_time_zone(self.reconcile_timezone)
        for key in ("settlement_limit", "registry_timeout"):
            if not getattr(self, key) > 0:
                raise SettingRefused(
                    key, f"{key} = {getattr(self, key)!r} is not a positive number of seconds"
                )
        try:
            normalize_url(self.database)
        except RegistryError as error:
            raise SettingRefused("database", error.message) from None

    @property
    def reconcile_time(self) -> time:
        return parse_time_of_day(self.reconcile_at)

    @property
    def reconcile_zone(self) -> tzinfo:
        return parse_time_zone(self.reconcile_timezone)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def parse_time_of_day(text: str) -> time:
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise SettingRefused(
            "reconcile_at",
            f"reconcile_at = {text!r} is not a time of day: write it as 24-hour HH:MM, e.g. "
            'reconcile_at = "02:00" (in reconcile_timezone)',
        )
    return time(int(match[1]), int(match[2]))


def parse_time_zone(name: str) -> tzinfo:
    """``UTC`` needs no time zone database (a container may have none); any other name is
    looked up in it."""
    if name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    if not zoneinfo.available_timezones():
        raise SettingRefused(
            "reconcile_timezone",
            f"reconcile_timezone = {name!r} cannot be looked up: this host has no time zone "
            "database; install the system's tzdata package (or pip install tzdata), or write "
            'reconcile_timezone = "UTC"',
        )
    raise SettingRefused(
        "reconcile_timezone",
        f"reconcile_timezone = {name!r} is not an IANA time zone: write a name such as "
        'reconcile_timezone = "America/New_York", or "UTC"',
    )
