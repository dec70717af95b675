"""``regfed report publish``'s work: read every registry and the oversight node's runs, apply
the disclosure policies, write the publication. A publication is never silently partial: when
any registry (or the oversight node) does not answer, it is refused (:class:`MissingMembers`)
unless the caller allows it, and then every page names what is missing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from regfed.node.ledger import timestamp, utc_now

from .build import build_publication
from .fetch import Progress, Source, fetch_records, fetch_runs
from .policy import PolicySet
from .stream import RecordsRefused
from .tables import Publication
from .write import check_target, write_publication


class MissingMembers(Exception):
    """Members of the federation did not answer: nothing was written."""

    def __init__(self, missing: dict[str, str]) -> None:
        names = ", ".join(sorted(missing))
        super().__init__(f"no answer from {names}: nothing was published")
        self.missing = missing


def publish(
    source: Source,
    target: Path,
    policies: PolicySet,
    *,
    allow_missing: bool = False,
    timeout: float = 10.0,
    progress: Progress | None = None,
    now: Callable[[], datetime] = utc_now,
) -> tuple[Publication, list[Path]]:
    """Read, build and write; the publication and the files written."""
    check_target(target)  # before reading anything: a folder we may not replace fails fast
    records, missing = fetch_records(source, timeout, progress)
    try:
        runs = fetch_runs(source)
    except RecordsRefused as refused:
        runs = []
        missing[refused.registry or "oversight"] = refused.reason
        if progress is not None:
            progress(refused.registry or "oversight", "missing")
    if missing and not allow_missing:
        raise MissingMembers(missing)
    publication = build_publication(
        records, runs, policies, missing=missing, generated_at=timestamp(now())
    )
    return publication, write_publication(publication, target)


__all__ = ["MissingMembers", "publish"]
