"""The run store's typed refusals, each with a stable ``code`` (never renamed: the oversight
service and ``regfed`` commands will show them) and the gRPC status name it maps to."""

from __future__ import annotations

from typing import Any, ClassVar


class RunError(Exception):
    code: ClassVar[str] = "RUN_ERROR"
    #: A grpc.StatusCode member's name, for the oversight service to answer with.
    status: ClassVar[str] = "FAILED_PRECONDITION"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AlreadyRan(RunError):
    """A second scheduled run for a calendar day (the schema refuses it too)."""

    code = "ALREADY_RAN"
    status = "ALREADY_EXISTS"


class RunIdTaken(RunError):
    code = "RUN_ID_TAKEN"
    status = "ALREADY_EXISTS"


class UnknownRun(RunError):
    code = "UNKNOWN_RUN"
    status = "NOT_FOUND"


class NotInconsistent(RunError):
    """A resolution is recorded only for an inconsistent run."""

    code = "NOT_INCONSISTENT"


class AlreadyFinished(RunError):
    code = "ALREADY_FINISHED"


class InvalidRun(RunError):
    """Arguments that contradict each other or the run's rules (e.g. ``incomplete`` with no
    missing registry, ``completed`` with discrepancies)."""

    code = "INVALID_RUN"
    status = "INVALID_ARGUMENT"


class RunStoreUnusable(RunError):
    """The database cannot hold runs: not reachable, or not a run database."""

    code = "RUN_STORE_UNUSABLE"
    status = "UNAVAILABLE"
