"""Run fault schedules inside experiments, and search them with Hypothesis for the smallest failure.

`run_schedule` (in chaos.schedule_run) applies and reverts each fault at its offset inside one
fault window, reverting everything still active on any exit (the ledger covers a hard kill).
`ScheduleSearch` runs one experiment per Hypothesis example on an environment reconciled in
between, and reports the minimal failing schedule with the command that replays it:
`--chaos-seed` seeds Hypothesis.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import Phase as HypothesisPhase
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky, Unsatisfiable
from hypothesis.strategies import SearchStrategy

from chaos.experiment import Experiment, ExperimentSettings
from chaos.record import ExperimentRecord
from chaos.schedule_run import POLL as POLL  # still importable from here, like all it holds
from chaos.schedule_run import InterruptLatch, expect_tolerated, run_schedule
from chaos.strategies import Schedule, fault_schedules
from chaos.units import format_duration

if TYPE_CHECKING:
    from chaos.catalog import Catalog
    from chaos.environments.base import Environment
    from chaos.experiment import Check, ExperimentListener
    from chaos.ledger import Ledger
    from chaos.session import ChaosSession

DEV_PROFILE = "chaos-dev"
CI_PROFILE = "chaos-ci"
_COMMON: dict[str, Any] = {
    "deadline": None,  # examples take seconds; each is bounded by its schedule and RTO instead
    "database": None,  # replay comes from --chaos-seed, not from a local example database
    "derandomize": False,  # the seed decides
    "report_multiple_bugs": False,
    "print_blob": False,
    "suppress_health_check": list(HealthCheck),
    "phases": (HypothesisPhase.explicit, HypothesisPhase.generate, HypothesisPhase.shrink),
}
settings.register_profile(DEV_PROFILE, max_examples=25, **_COMMON)
settings.register_profile(CI_PROFILE, max_examples=10, **_COMMON)
BUDGETS: Mapping[str, float] = {DEV_PROFILE: 600.0, CI_PROFILE: 180.0}  # seconds per search


def profile_name(environ: Mapping[str, str] = os.environ) -> str:
    """chaos-ci under CI=true (fewer examples, shorter budget), chaos-dev otherwise."""
    return CI_PROFILE if environ.get("CI") == "true" else DEV_PROFILE


# -- the search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One schedule run: its failure (None: the system held), duration and experiment record."""

    schedule: Schedule
    failure: AssertionError | None
    seconds: float
    record: ExperimentRecord | None = None

    @property
    def verdict(self) -> str:
        return "held" if self.failure is None else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule.to_json(),
            "verdict": self.verdict,
            "failure": None if self.failure is None else _error_text(self.failure),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Exploration:
    """What one Hypothesis run over schedules found; `minimal` is the smallest failing trial."""

    trials: tuple[Trial, ...]
    minimal: Trial | None
    seed: int
    profile: str
    budget: float
    budget_exhausted: bool
    seconds: float


class _Falsified(AssertionError):
    """Tells Hypothesis an example failed; never leaves explore()."""


class _Aborted(BaseException):
    """Carries an error that is not a verdict (a broken environment) through Hypothesis at once.

    A BaseException, so Hypothesis neither shrinks on it nor swallows it.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _State:
    cache: dict[str, Trial] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    minimal: Trial | None = None
    exhausted: bool = False


def explore(
    strategy: SearchStrategy[Schedule],
    trial: Callable[[Schedule], Trial],
    *,
    seed: int,
    profile: str | None = None,
    max_examples: int | None = None,
    budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Exploration:
    """Let Hypothesis draw and shrink schedules; `trial` runs one (AssertionError → failure).

    Deterministic for a seed and the same verdicts. Each distinct schedule runs once (verdicts
    of real systems are noisy; the cache keeps Hypothesis' replays consistent). Once `budget`
    seconds have passed no new schedule runs, so shrinking stops at the smallest found so far.
    Any other exception from `trial` aborts the search and is raised as is.
    """
    name = profile or profile_name()
    chosen = settings.get_profile(name)
    if max_examples is not None:
        chosen = settings(chosen, max_examples=max_examples)
    limit = BUDGETS.get(name, BUDGETS[DEV_PROFILE]) if budget is None else budget
    started = clock()
    state = _State()

    def example(schedule: Schedule) -> None:
        latch.check()
        key = schedule.dumps()
        known = state.cache.get(key)
        if known is None:
            if clock() - started >= limit:
                state.exhausted = True
                reject()
            try:
                known = trial(schedule)
            except Exception as err:
                raise _Aborted(err) from err
            state.cache[key] = known
            state.trials.append(known)
        if known.failure is not None:
            state.minimal = known
            raise _Falsified(_error_text(known.failure))

    test = chosen(hypothesis_seed(seed)(given(strategy)(example)))
    try:
        with InterruptLatch() as latch:
            test()
    except _Aborted as aborted:
        raise aborted.error from None
    except (_Falsified, Flaky, Unsatisfiable):
        pass  # the verdict is in `state`; Unsatisfiable: the budget ran out before any example
    return Exploration(
        trials=tuple(state.trials),
        minimal=state.minimal,
        seed=seed,
        profile=name,
        budget=limit,
        budget_exhausted=state.exhausted,
        seconds=clock() - started,
    )


@dataclass(frozen=True)
class SearchSettings:
    """What to search (schedule space) and how long (profile, examples, budget)."""

    seed: int = 0
    max_faults: int = 2
    horizon: str | float = "3s"
    kinds: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    min_duration: str | float = "500ms"
    step: str | float = "100ms"
    profile: str | None = None  # None: chaos-ci under CI=true, else chaos-dev
    max_examples: int | None = None  # None: the profile's
    budget: float | None = None  # seconds; None: the profile's (BUDGETS)
    rto: str | float | None = None  # None: the catalog's RTO of the faulted services
    tolerate: bool = True  # every journey's SLO must hold during the schedule
    expect: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # journey -> expect()

    def strategy(self, catalog: Catalog) -> SearchStrategy[Schedule]:
        return fault_schedules(
            catalog,
            max_faults=self.max_faults,
            horizon=self.horizon,
            kinds=self.kinds,
            targets=self.targets,
            min_duration=self.min_duration,
            step=self.step,
        )


Invariants = Sequence["Check"] | Callable[[Experiment], Sequence["Check"]]


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search: the minimal failing trial (if any) and how to replay it."""

    exploration: Exploration
    test_id: str
    replay_command: str

    @property
    def failed(self) -> bool:
        return self.exploration.minimal is not None

    @property
    def minimal(self) -> Schedule | None:
        return None if self.exploration.minimal is None else self.exploration.minimal.schedule

    @property
    def record(self) -> ExperimentRecord | None:
        """The minimal failing trial's record (else the last trial's), the search in `extra`."""
        found = self.exploration.minimal or next(reversed(self.exploration.trials), None)
        if found is None or found.record is None:
            return None
        extra = {**found.record.extra, "schedule_search": self.to_json()}
        return dataclasses.replace(found.record, test_id=self.test_id, extra=extra)

    def to_json(self) -> dict[str, Any]:
        ex = self.exploration
        return {
            "verdict": "failed" if self.failed else "held",
            "seed": ex.seed,
            "profile": ex.profile,
            "examples": len(ex.trials),
            "failing_examples": sum(1 for t in ex.trials if t.failure is not None),
            "seconds": round(ex.seconds, 3),
            "budget": ex.budget,
            "budget_exhausted": ex.budget_exhausted,
            "minimal_schedule": None if ex.minimal is None else ex.minimal.schedule.to_json(),
            "minimal_description": None if ex.minimal is None else ex.minimal.schedule.describe(),
            "failure": None if ex.minimal is None else _error_text(ex.minimal.failure),
            "replay": self.replay_command,
            "trials": [t.to_json() for t in ex.trials],
        }

    def message(self) -> str:
        ex = self.exploration
        tried = f"{len(ex.trials)} schedules tried in {format_duration(ex.seconds)}"
        if ex.minimal is None:
            return f"schedule search held: {tried} (seed {ex.seed}, profile {ex.profile})"
        cut = " (budget exhausted: shrinking stopped early)" if ex.budget_exhausted else ""
        indented = ex.minimal.schedule.describe().replace("\n", "\n  ")
        return (
            f"schedule search found a failing schedule; the smallest of {tried}{cut}:\n"
            f"  {indented}\n"
            f"it failed with {_error_text(ex.minimal.failure)}\n"
            f"replay the search: {self.replay_command}\n"
            f"replay this schedule: Schedule.from_json({ex.minimal.schedule.dumps()!r})"
        )

    def raise_for_failure(self) -> None:
        """Raise the minimal failure's kind (NotRecovered, ImpactExceeded…) with the report."""
        minimal = self.exploration.minimal
        if minimal is not None and minimal.failure is not None:
            raise type(minimal.failure)(self.message()) from minimal.failure


def _error_text(error: BaseException | None) -> str:
    return "" if error is None else f"{type(error).__name__}: {error}"


class ScheduleSearch:
    """Runs schedules against an environment, one reconciled experiment each, under Hypothesis."""

    def __init__(
        self,
        new_experiment: Callable[[str], Experiment],
        catalog: Catalog,
        search: SearchSettings,
        *,
        invariants: Invariants = (),
        test_id: str = "schedule-search",
        replay_command: str | None = None,
    ) -> None:
        self._new_experiment = new_experiment
        self.catalog = catalog
        self.search_settings = search
        self._invariants = invariants
        self.test_id = test_id
        self.replay_command = replay_command or (
            f"ScheduleSearch(...) with SearchSettings(seed={search.seed})"
        )
        self._count = 0

    @classmethod
    def from_session(
        cls,
        session: ChaosSession,
        test_id: str,
        search: SearchSettings,
        *,
        invariants: Invariants = (),
        overrides: Mapping[str, Any] | None = None,
        listener: ExperimentListener | None = None,
    ) -> ScheduleSearch:
        """Experiments from the plugin's session (each reconciles first); replay by node id."""
        extra = {**(overrides or {})}
        return cls(
            lambda name: session.experiment(name, extra, listener),
            session.catalog(),
            search,
            invariants=invariants,
            test_id=test_id,
            replay_command=f"pytest {shlex.quote(test_id)} --chaos-seed={search.seed}",
        )

    @classmethod
    def for_environment(
        cls,
        env: Environment,
        ledger: Ledger,
        search: SearchSettings,
        *,
        experiment_settings: ExperimentSettings | None = None,
        invariants: Invariants = (),
        test_id: str = "schedule-search",
    ) -> ScheduleSearch:
        """Experiments on a running environment, reconciled before each."""
        exp_settings = experiment_settings or ExperimentSettings(seed=search.seed)

        def new_experiment(name: str) -> Experiment:
            repairs = env.reconcile()
            return Experiment(env, ledger, name=name, settings=exp_settings, repairs=repairs)

        return cls(new_experiment, env.catalog, search, invariants=invariants, test_id=test_id)

    def search(self) -> SearchResult:
        """Explore schedules; never raises for a failing schedule (see raise_for_failure)."""
        s = self.search_settings
        exploration = explore(
            s.strategy(self.catalog),
            self.run,
            seed=s.seed,
            profile=s.profile,
            max_examples=s.max_examples,
            budget=s.budget,
        )
        return SearchResult(exploration, self.test_id, self.replay_command)

    def run(self, schedule: Schedule) -> Trial:
        """One schedule in a fresh experiment (also: replay Schedule.from_json(...) exactly).

        Assertion failures (NotRecovered, ImpactExceeded, InvariantViolated) are the verdict and
        are returned; anything else means the experiment could not run and is raised.
        """
        self._count += 1
        started = time.monotonic()
        exp = self._new_experiment(f"{self.test_id} [schedule {self._count}]")
        failure: AssertionError | None = None
        try:
            self._exercise(exp, schedule)
        except AssertionError as err:
            failure = err
        except BaseException as err:
            exp.finish(test_id=self.test_id, error=err)
            raise
        record = exp.finish(test_id=self.test_id, error=failure)
        extra = {**record.extra, "schedule": schedule.to_json()}
        record = dataclasses.replace(record, extra=extra)
        return Trial(schedule, failure, time.monotonic() - started, record)

    def _exercise(self, exp: Experiment, schedule: Schedule) -> None:
        checks = self._invariants(exp) if callable(self._invariants) else self._invariants
        run_schedule(exp, schedule)
        exp.recover(self.search_settings.rto)
        exp.verify(*checks)
        if self.search_settings.tolerate:
            expect_tolerated(exp)
        for journey, limits in self.search_settings.expect.items():
            exp.expect(journey, **limits)
