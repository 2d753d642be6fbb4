"""One exception tree, so callers can catch ChaosError and messages always say what to do."""

from __future__ import annotations

from pathlib import Path


class ChaosError(Exception):
    """Base of every error pytest-chaos raises on purpose."""


class ConfigError(ChaosError):
    """A command-line option, ini value or environment variable is wrong."""


class ParallelRunConflict(ConfigError):
    """pytest-xdist workers would share something only one run can hold (ports, names)."""


class CatalogError(ChaosError):
    """A catalog or environment file is malformed; names file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "<catalog>"
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f": {self.field}"
        return f"{where}: {self.reason}"


class EnvironmentFailure(ChaosError):
    """The environment could not be started, reached or stopped."""


class EngineUnreachable(EnvironmentFailure):
    """No Docker engine answers (callers that can do without Docker skip instead of failing)."""


class FaultError(ChaosError):
    """A fault could not be planned or applied."""


class UnknownFaultKind(FaultError):
    """A fault kind name is not registered; the message lists the valid ones."""


class UnknownTarget(FaultError):
    """A fault names a service or edge the catalog does not declare."""


class RevertError(ChaosError):
    """A fault could not be reverted: something is left behind; the message says what and how to remove it."""


class ProxyError(ChaosError):
    """The proxy admin API refused a request (`status` = its HTTP code) or could not be reached (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LedgerError(ChaosError):
    """The fault ledger could not be written or read."""


class SteadyStateBroken(ChaosError):
    """The steady-state hypothesis did not hold before the fault: the experiment is broken, not failed."""


class ExperimentMisuse(ChaosError):
    """Experiment phases were called out of order (e.g. observe before inject)."""


class NotRecovered(AssertionError, ChaosError):
    """The system did not converge back to steady state within its recovery objective (test failure)."""


class ImpactExceeded(AssertionError, ChaosError):
    """A measured customer impact broke an expectation (test failure)."""


class InvariantViolated(AssertionError, ChaosError):
    """A reconciliation / history invariant does not hold after the experiment (test failure)."""
