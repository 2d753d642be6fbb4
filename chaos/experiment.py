"""One experiment: baseline → inject → observe → revert (always) → recover → verify → record.

Plain class, usable without pytest; the `experiment` fixture builds one per test. Every injection
is written to the ledger before it is applied and its revert is pushed on a LIFO stack that unwinds
in `finally` — on success, failure, error and KeyboardInterrupt (SIGTERM is turned into one).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chaos.errors import (
    ChaosError,
    ImpactExceeded,
    InvariantViolated,
    NotRecovered,
    RevertError,
    SteadyStateBroken,
)
from chaos.impact import Impact, Outcome, Window, classify, impact, percentile, time_to_recover
from chaos.phases import Event, Phase, PhaseMachine
from chaos.probes import ProbeSet, check_steady_state, wait_for_steady_state
from chaos.record import ExperimentRecord, FaultRecord, PhaseTiming
from chaos.report.allure import fault_title
from chaos.report.plots import timeline
from chaos.report.tables import impact_table
from chaos.units import format_duration, parse_duration
from faults.base import Fault, Injection

if TYPE_CHECKING:
    from chaos.environments.base import Environment
    from chaos.ledger import Ledger

Check = Callable[["Environment"], object]


@dataclass(frozen=True)
class ExperimentSettings:
    """Resolved per-experiment settings (marker > CLI > env > ini, see chaos.settings)."""

    rto: float | None = None  # None: the largest RTO of the services the faults touch
    baseline: float = 1.0  # seconds of steady state sampled before the first fault
    seed: int = 0
    max_observe: float = 600.0  # no single observe() may exceed this (bounded loops)


class ExperimentListener(Protocol):
    """Receives phase lines as they happen (the terminal reporter prints them with -v)."""

    def phase(self, name: str, detail: str, seconds: float) -> None: ...


class Experiment:
    """The phases of one failure experiment against a running environment."""

    def __init__(
        self,
        env: Environment,
        ledger: Ledger,
        *,
        name: str,
        settings: ExperimentSettings | None = None,
        listener: ExperimentListener | None = None,
        repairs: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = env
        self.ledger = ledger
        self.name = name
        self.settings = settings or ExperimentSettings()
        self.repairs = tuple(repairs)
        self._listener = listener
        self._clock = clock
        self._machine = PhaseMachine()
        self._t0 = clock()
        self._wall0 = time.time()  # reports place the phases on the wall clock
        self._depth = 0
        self._faults: list[dict[str, Any]] = []
        self._phases: list[PhaseTiming] = []
        self._probes = ProbeSet.from_journeys(
            env.catalog.journeys.values(), env.endpoint, near=env.catalog.path.parent
        )
        self._baseline: dict[str, dict[str, Any]] = {}
        self._window_start: float | None = None
        self._fault_end: float | None = None
        self._revert_at: float | None = None
        self._ttr: float | None = None
        self._recovered = False
        self.record: ExperimentRecord | None = None

    # -- phases -----------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._machine.phase

    @property
    def window(self) -> Window:
        """The fault window: first fault applied → last fault reverted (or now, while active)."""
        return self._window()

    @property
    def fault_ended_at(self) -> float | None:
        """When the faults stopped acting (revert, or the moment of an instant fault): TTR starts here."""
        return self._fault_end

    @property
    def samples(self) -> dict[str, list[Any]]:
        """Every sample recorded so far, per journey."""
        return {name: self._samples(name) for name in self.env.catalog.journeys}

    def baseline(self, duration: str | float | None = None) -> None:
        """Start the customers and check the steady-state hypothesis before any fault."""
        seconds = self.settings.baseline if duration is None else parse_duration(duration)
        self._machine.advance(Event.BASELINE)
        with self._timed("baseline", format_duration(seconds)):
            since = self._clock()
            self._probes.start()
            self._sleep(seconds)
            # Slow journeys may not have two rounds of samples yet: allow a bounded margin.
            wait_for_steady_state(
                self._probes,
                self._slos(),
                since=since,
                timeout=self._evidence_margin(),
                poll=self._poll(),
                clock=self._clock,
            )
            verdicts = check_steady_state(self._probes, self._slos(), since=since)
        self._baseline = {
            name: _verdict_json(v, self._samples(name), since) for name, v in verdicts.items()
        }
        broken = {name: v for name, v in verdicts.items() if not v.holds}
        if broken:
            reasons = "; ".join(f"{n}: {', '.join(v.reasons)}" for n, v in broken.items())
            raise SteadyStateBroken(
                f"steady state does not hold before any fault ({reasons}); the system is "
                "unhealthy, so this experiment cannot say anything — check the services' logs"
            )

    @contextlib.contextmanager
    def inject(self, *faults: Fault) -> Iterator[Experiment]:
        """Inject faults for the duration of the `with` block; always revert them on exit."""
        if self.phase is Phase.READY:
            self.baseline()
        plans = [fault.plan(self.env) for fault in faults]  # validation first: nothing injected yet
        self._machine.advance(Event.INJECT)
        self._depth += 1
        try:
            with contextlib.ExitStack() as undo:
                for fault, plan in zip(faults, plans, strict=True):
                    self._apply(fault, plan, undo)
                yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._revert_at = self._clock()
                self._fault_end = self._faults_ended_at(self._revert_at)
                self._machine.advance(Event.REVERT)
                self._note("revert", "", 0.0)

    def observe(self, duration: str | float) -> None:
        """Let the customers keep sampling for `duration` (bounded by settings.max_observe)."""
        seconds = min(parse_duration(duration), self.settings.max_observe)
        self._machine.advance(Event.OBSERVE)
        with self._timed("observe", format_duration(seconds)):
            self._sleep(seconds)

    def recover(self, rto: str | float | None = None) -> float:
        """Wait until steady state holds again; return TTR; fail with NotRecovered after the RTO."""
        limit = self._rto() if rto is None else parse_duration(rto)
        self._machine.advance(Event.RECOVER)
        assert self._fault_end is not None
        with self._timed("recover", f"rto {format_duration(limit)}"):
            # Wait past the RTO by the evidence margin: recovery close to the RTO needs a few
            # samples after it to be seen; the verdict is the measured TTR against the RTO.
            seen = wait_for_steady_state(
                self._probes,
                self._slos(),
                since=self._fault_end,
                timeout=max(
                    0.0, limit + self._evidence_margin() - (self._clock() - self._fault_end)
                ),
                poll=self._poll(),
                clock=self._clock,
            )
        self._ttr = self._measured_ttr() if seen is not None else None
        self._recovered = self._ttr is not None and self._ttr <= limit
        if not self._recovered:
            measured = "never" if self._ttr is None else f"only after {format_duration(self._ttr)}"
            raise NotRecovered(
                f"{self.name}: steady state did not return within the RTO of "
                f"{format_duration(limit)} after the fault ended (it returned {measured})\n"
                f"{self._impact_text()}"
            )
        return self._ttr or 0.0

    def verify(self, *checks: Check) -> None:
        """Run reconciliation invariants against the environment; any failure fails the test."""
        self._machine.advance(Event.VERIFY)
        with self._timed("verify", f"{len(checks)} checks"):
            problems = [_run_check(check, self.env) for check in checks]
        failed = [p for p in problems if p]
        if failed:
            raise InvariantViolated(f"{self.name}: invariants violated:\n  " + "\n  ".join(failed))

    def expect(
        self,
        journey: str,
        *,
        max_error_rate: float | None = None,
        p95: str | float | None = None,
        p99: str | float | None = None,
        max_customers_affected: int | None = None,
        max_ttr: str | float | None = None,
    ) -> Impact:
        """Assert the customer impact of the fault on `journey`; the failure shows the measurements."""
        measured = self.impact(journey)
        broken = _broken_expectations(measured, max_error_rate, p95, p99, max_customers_affected)
        if max_ttr is not None and (measured.ttr is None or measured.ttr > parse_duration(max_ttr)):
            broken.append(
                f"TTR {format_duration(measured.ttr)} > {format_duration(parse_duration(max_ttr))}"
            )
        if broken:
            raise ImpactExceeded(
                f"{self.name}: journey {journey!r} impact exceeds expectations: "
                + "; ".join(broken)
                + f"\n{self._impact_text()}"
            )
        return measured

    def impact(self, journey: str) -> Impact:
        """The measured impact of the fault window on one journey."""
        slo = self.env.catalog.journeys[journey].slo
        return impact(self._samples(journey), self._window(), slo, ttr=self._journey_ttr(journey))

    def impacts(self) -> dict[str, Impact]:
        return {name: self.impact(name) for name in self.env.catalog.journeys}

    # -- finishing ---------------------------------------------------------------------------

    def finish(self, *, test_id: str = "", error: BaseException | None = None) -> ExperimentRecord:
        """Revert what is left, complete recovery if the test did not, stop customers, make the record."""
        if self.record is not None:
            return self.record
        try:
            if error is None and self.phase is Phase.REVERTED:
                self.recover()
        except BaseException as err:  # the record must still be made; re-raised below
            error = err
            raise
        finally:
            self._probes.stop()
            self._release_stray_entries()
            self.record = self._make_record(test_id, error)
            self._machine.advance(Event.FINISH)
        return self.record

    # -- internals ---------------------------------------------------------------------------

    def _apply(self, fault: Fault, plan: Injection, undo: contextlib.ExitStack) -> None:
        entry = self.ledger.acquire(plan.description, plan.recipe, kind="fault")
        info: dict[str, Any] = {"fault": fault, "plan": plan, "applied": None, "reverted": None}
        self._faults.append(info)
        undo.callback(self._revert, plan, entry, info)
        started = self._clock()
        plan.apply()
        info["applied"] = self._clock()
        self._window_start = self._window_start or started
        self._note("inject", _title(fault), info["applied"] - started)

    def _faults_ended_at(self, revert_at: float) -> float:
        """When the last fault stopped acting: the revert, unless every fault was an instant
        event (a crash acts as it happens), then the latest of those events."""
        if any(not i["plan"].instant for i in self._faults):
            return revert_at
        events = [i["applied"] for i in self._faults if i["applied"] is not None]
        return max(events, default=revert_at)

    def _release_stray_entries(self) -> None:
        """Revert fault entries an interrupt left open between ledger write and undo registration."""
        from faults.registry import run_recipe  # the registry imports every fault module

        for entry in self.ledger.open_entries:
            if entry.kind == "fault" and entry.opened_at >= self._wall0:
                run_recipe(entry.recipe)
                self.ledger.release(entry.id)

    def _revert(self, plan: Injection, entry: str, info: dict[str, Any]) -> None:
        started = self._clock()
        try:
            plan.revert()
        except Exception as err:
            raise RevertError(
                f"could not revert {plan.description}: {err}. It is still in effect; "
                f"run `chaos clean` to revert it from the ledger ({self.ledger.path})"
            ) from err
        info["reverted"] = self._clock()
        self.ledger.release(entry)
        self._note("revert", _title(info["fault"]), info["reverted"] - started)

    def _make_record(self, test_id: str, error: BaseException | None) -> ExperimentRecord:
        impacts = self.impacts() if self._window_start is not None else {}
        outcome = _outcome(error, impacts, self._recovered)
        services = tuple(dict.fromkeys(self._service_of(i["fault"].target) for i in self._faults))
        faults = tuple(self._fault_record(i) for i in self._faults)
        return ExperimentRecord(
            test_id=test_id or self.name,
            name=self.name,
            outcome=outcome,
            services=services,
            faults=faults,
            impacts=impacts,
            baseline=self._baseline,
            phases=tuple(self._phases),
            rto=self._rto() if self._faults else None,
            ttr=self._ttr,
            seed=self.settings.seed,
            repairs=self.repairs,
            error=None if error is None else f"{type(error).__name__}: {error}",
            failure_mode=" + ".join(f.kind + " " + f.target for f in faults),
            extra=self._report_extra(),
        )

    def _report_extra(self) -> dict[str, Any]:
        """For reports: wall-clock start, bucketed samples, tier and restore order of the services."""
        window = self._window() if self._window_start is not None else None
        services = {self._service_of(i["fault"].target) for i in self._faults}
        catalog = self.env.catalog.services
        return {
            "started_at": self._wall0,
            "timeline": timeline(
                self.samples,
                t0=self._t0,
                window=None if window is None else (window.start, window.end),
                fault_end=self._fault_end,
            ).to_json(),
            "services": {
                name: {"tier": catalog[name].tier, "restore_order": catalog[name].restore_order}
                for name in sorted(services)
            },
        }

    def _fault_record(self, info: dict[str, Any]) -> FaultRecord:
        fault: Fault = info["fault"]
        applied, reverted = info["applied"], info["reverted"]
        return FaultRecord(
            kind=fault.kind,
            target=fault.target,
            params=fault.params(),
            description=info["plan"].description,
            applied_at=0.0 if applied is None else applied - self._t0,
            reverted_at=None if reverted is None else reverted - self._t0,
        )

    def _service_of(self, target: str) -> str:
        if target in self.env.catalog.services:
            return target
        return self.env.catalog.edge(target).provider

    def _rto(self) -> float:
        if self.settings.rto is not None:
            return self.settings.rto
        services = [self._service_of(i["fault"].target) for i in self._faults]
        rtos = [self.env.catalog.services[s].rto for s in services]
        return max(rtos, default=30.0)

    def _slos(self) -> Mapping[str, Any]:
        return {name: j.slo for name, j in self.env.catalog.journeys.items()}

    def _evidence_margin(self) -> float:
        """Time for two rounds of every journey's customers: what a steady-state verdict needs."""
        intervals = [j.interval + j.timeout for j in self.env.catalog.journeys.values()]
        return max(0.5, 2 * max(intervals, default=0.5))

    def _poll(self) -> float:
        intervals = [j.interval for j in self.env.catalog.journeys.values()]
        return max(0.02, min(intervals, default=0.1))

    def _samples(self, journey: str) -> list[Any]:
        return self._probes.samples(journey)

    def _window(self) -> Window:
        start = self._window_start if self._window_start is not None else self._clock()
        end = self._revert_at if self._revert_at is not None else self._clock()
        return Window(start, end)

    def _journey_ttr(self, journey: str) -> float | None:
        if self._fault_end is None or self.phase in (Phase.INJECTED, Phase.REVERTED):
            return None  # recovery not yet judged
        slo = self.env.catalog.journeys[journey].slo
        return time_to_recover(self._samples(journey), self._fault_end, slo)

    def _measured_ttr(self) -> float | None:
        """The slowest journey's TTR; None when any journey has not recovered."""
        ttrs = [self._journey_ttr(name) for name in self.env.catalog.journeys]
        if any(t is None for t in ttrs):
            return None
        return max(ttrs, default=0.0)

    def _impact_text(self) -> str:
        return impact_table(self.impacts())

    def _sleep(self, seconds: float) -> None:
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:  # bounded by `seconds`
            time.sleep(min(left, 0.05))

    @contextlib.contextmanager
    def _timed(self, name: str, detail: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            self._note(name, detail, self._clock() - started, started)

    def _note(self, name: str, detail: str, seconds: float, started: float | None = None) -> None:
        start = (started if started is not None else self._clock() - seconds) - self._t0
        self._phases.append(PhaseTiming(name, start, seconds, detail))
        if self._listener is not None:
            self._listener.phase(name, detail, seconds)


def _title(fault: Fault) -> str:
    return fault_title(fault.kind, fault.target, fault.params())


def _verdict_json(verdict: Any, samples: Sequence[Any], since: float) -> dict[str, Any]:
    """The steady-state figures kept as the run's baseline (chaos.report.baselines)."""
    ratio = verdict.success_ratio
    return {
        "holds": verdict.holds,
        "success_ratio": ratio,
        "error_rate": None if ratio is None else 1.0 - ratio,
        "p50": percentile([s.latency for s in samples if s.t >= since], 50),
        "p95": verdict.p95,
        "p99": verdict.p99,
        "samples": verdict.samples,
    }


def _outcome(
    error: BaseException | None, impacts: Mapping[str, Impact], recovered: bool
) -> Outcome:
    if isinstance(error, NotRecovered):
        return Outcome.NOT_RECOVERED
    if error is not None and not isinstance(error, AssertionError):
        return Outcome.BROKEN
    if not impacts:
        return Outcome.BROKEN if error is not None else Outcome.TOLERATED
    return classify(impacts, recovered=recovered)


def _broken_expectations(
    measured: Impact,
    max_error_rate: float | None,
    p95: str | float | None,
    p99: str | float | None,
    max_customers_affected: int | None,
) -> list[str]:
    broken: list[str] = []
    if max_error_rate is not None and measured.error_rate > max_error_rate:
        broken.append(f"error rate {measured.error_rate:.1%} > {max_error_rate:.1%}")
    for label, limit, value in (("p95", p95, measured.p95), ("p99", p99, measured.p99)):
        if limit is not None and value is not None and value > parse_duration(limit):
            broken.append(
                f"{label} {format_duration(value)} > {format_duration(parse_duration(limit))}"
            )
    if max_customers_affected is not None and measured.customers_affected > max_customers_affected:
        broken.append(
            f"customers affected {measured.customers_affected} > {max_customers_affected}"
        )
    return broken


def _run_check(check: Check, env: Environment) -> str | None:
    """Run one invariant; a returned False or a raised AssertionError/ChaosError is a violation."""
    label = getattr(check, "__name__", repr(check))
    try:
        result = check(env)
    except (AssertionError, ChaosError) as err:
        return f"{label}: {err}"
    return f"{label}: returned {result!r}" if result is False else None
