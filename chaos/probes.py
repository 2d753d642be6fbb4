"""Synthetic customers: run every journey continuously and record one Sample per attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from chaos.catalog import fill_placeholders, status_accepted
from chaos.errors import CatalogError, ConfigError, ExperimentMisuse
from chaos.impact import Sample, SloLike, SloVerdict, SteadyState, steady_verdict
from chaos.journey_http import BODY_EXCERPT, HttpResult, JourneyFailed, join_url, send_request
from chaos.journeys import import_near

Endpoint = Callable[[str], str]
Action = Callable[["JourneyContext"], object]


@dataclass(frozen=True, slots=True)
class JourneyContext:
    """What one attempt of a Python journey gets: who it is, its budget, how to call services."""

    journey: str
    customer: int
    seq: int
    timeout: float
    resolve: Endpoint
    deadline: float
    clock: Callable[[], float] = time.monotonic

    def endpoint(self, service: str) -> str:
        """Base URL of `service` as this customer reaches it, e.g. "http://127.0.0.11:8000"."""
        return self.resolve(service)

    def remaining(self) -> float:
        """Seconds left of this attempt's timeout."""
        return self.deadline - self.clock()

    def expand(self, text: str) -> str:
        """Fill the {customer} and {seq} placeholders of a catalog path or body string."""
        return fill_placeholders(text, self.customer, self.seq)

    def http(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json: object = None,
        expect: Sequence[int] = (),
    ) -> HttpResult:
        """One request to `service`; a bad status or I/O error raises JourneyFailed."""
        return self.request(
            method, join_url(self.endpoint(service), path), json=json, expect=expect
        )

    def request(
        self, method: str, url: str, *, json: object = None, expect: Sequence[int] = ()
    ) -> HttpResult:
        """One request to a full URL on a fresh connection, within what is left of the timeout.

        Status must be in `expect`, or 2xx when `expect` is empty, else JourneyFailed("http-NNN").
        """
        remaining = self.remaining()
        if remaining <= 0:
            raise JourneyFailed("timeout", f"{self.timeout}s budget used before {method} {url}")
        result = send_request(method, url, json, remaining)
        if not status_accepted(result.status, expect):
            wanted = "/".join(map(str, expect)) if expect else "2xx"
            raise JourneyFailed(
                f"http-{result.status}",
                f"{method} {url} answered {result.status}, expected {wanted}: "
                f"{result.body[:BODY_EXCERPT]!r}",
            )
        return result


def _expand_json(value: object, ctx: JourneyContext) -> object:
    """Placeholders in every string of a JSON body, so each customer can send its own data."""
    if isinstance(value, str):
        return ctx.expand(value)
    if isinstance(value, list):
        return [_expand_json(item, ctx) for item in value]
    if isinstance(value, dict):
        return {key: _expand_json(item, ctx) for key, item in value.items()}
    return value


def _steps_action(steps: Sequence[Any], endpoint: Endpoint) -> Action:
    """The catalog's HTTP steps, in order; the journey's value is the last JSON answer (or None)."""

    def run(ctx: JourneyContext) -> object:
        result: HttpResult | None = None
        for step in steps:
            result = ctx.request(
                step.method,
                join_url(endpoint(step.service), ctx.expand(step.path)),
                json=_expand_json(step.json, ctx),
                expect=tuple(step.expect),
            )
        return result.json() if result is not None and result.is_json else None

    return run


def _import_call(journey_name: str, dotted: str, near: Path | None = None) -> Action:
    """Resolve "package.module:attr.path" to a callable, or say exactly what is wrong."""

    def bad(problem: str) -> CatalogError:
        return CatalogError(
            f"journey {journey_name!r}: call {dotted!r} {problem}",
            field=f"journeys.{journey_name}.call",
        )

    module_name, sep, attr_path = dotted.partition(":")
    if not sep or not module_name or not attr_path:
        raise bad("must look like 'package.module:function'")
    try:
        target: Any = import_near(module_name, near)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except ImportError as err:
        raise bad(f"cannot be imported ({err}); is the module on sys.path / installed?") from err
    except AttributeError as err:
        raise bad(f"names nothing: {module_name!r} has no {attr_path!r}") from err
    if not callable(target):
        raise bad(f"is a {type(target).__name__}, not a function taking a JourneyContext")
    return target


def journey_action(journey: Any, endpoint: Endpoint, near: Path | None = None) -> Action:
    """What one attempt of `journey` does: its HTTP steps, or its Python `call`.

    `endpoint` is the resolver the steps will use; a Python journey reaches it through
    ctx.endpoint / ctx.http. Import errors surface now, as CatalogError, not as failed samples.
    """
    call = getattr(journey, "call", None)
    steps = tuple(getattr(journey, "steps", ()) or ())
    if call:
        return _import_call(journey.name, call, near)
    if steps:
        return _steps_action(steps, endpoint)
    raise CatalogError(
        f"journey {journey.name!r} has neither steps nor call: give it HTTP steps or a "
        "'module:function' call",
        field=f"journeys.{journey.name}",
    )


class Probe:
    """N synthetic customers running one journey, one daemon thread each, until stopped.

    Customer c starts c/N of an interval late, so samples are spread evenly in time and
    recovery is resolved to interval/N. Bounded: it stops itself after `max_samples` samples
    or `max_duration` seconds. An attempt slower than `timeout` is a failure of kind "timeout"
    (the customer gave up), even when a Python journey ignored its budget.
    """

    def __init__(
        self,
        journey_name: str,
        action: Action,
        *,
        customers: int,
        interval: float,
        timeout: float,
        endpoint: Endpoint,
        clock: Callable[[], float] = time.monotonic,
        max_samples: int = 100_000,
        max_duration: float = 3600.0,
    ) -> None:
        _require_positive(journey_name, customers=customers, max_samples=max_samples)
        _require_positive(
            journey_name, interval=interval, timeout=timeout, max_duration=max_duration
        )
        self.journey = journey_name
        self.customers = customers
        self.interval = interval
        self.timeout = timeout
        self.max_samples = max_samples
        self.max_duration = max_duration
        self._action = action
        self._endpoint = endpoint
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._samples: list[Sample] = []
        self._messages: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._started_at: float | None = None
        self._last: float | None = None
        self.exhausted: str | None = None  # "max_samples" / "max_duration" once a bound was hit

    def start(self) -> None:
        """Start every customer; a probe runs once (make a new one to probe again)."""
        if self._threads:
            raise ExperimentMisuse(
                f"probe {self.journey!r} was already started; create a new Probe"
            )
        self._started_at = self._clock()
        self._threads = [
            threading.Thread(
                target=self._customer, args=(c,), name=f"probe-{self.journey}-{c}", daemon=True
            )
            for c in range(self.customers)
        ]
        for thread in self._threads:
            thread.start()

    def signal_stop(self) -> None:
        """Ask every customer to stop after its current attempt, without waiting."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask every customer to stop and join them; False if one is still stuck in an attempt."""
        self.signal_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def last_sample_time(self) -> float | None:
        """Start time of the latest attempt recorded, None before the first."""
        return self._last

    def samples(self, since: float | None = None) -> list[Sample]:
        """Snapshot of the samples (t >= since), sorted by time then customer."""
        with self._lock:
            taken = (
                list(self._samples) if since is None else [s for s in self._samples if s.t >= since]
            )
        return sorted(taken, key=lambda s: (s.t, s.customer))

    def error_messages(self) -> dict[str, str]:
        """Latest message seen for each error kind, to explain a broken steady state."""
        with self._lock:
            return dict(self._messages)

    def _customer(self, customer: int) -> None:
        if self._stop.wait(self.interval * customer / self.customers):
            return
        for seq in range(1, self.max_samples + 1):
            if not self._record(self._attempt(customer, seq)) or self._stop.wait(self.interval):
                return

    def _attempt(self, customer: int, seq: int) -> Sample:
        start = self._clock()
        budget = start + self.timeout
        ctx = JourneyContext(
            self.journey, customer, seq, self.timeout, self._endpoint, budget, self._clock
        )
        value: object = None
        error: str | None = None
        message = ""
        try:
            value = self._action(ctx)
        except JourneyFailed as err:
            error, message = err.kind, err.message
        except Exception as err:  # any exception of a Python journey is a failed attempt
            error, message = type(err).__name__, str(err)
        latency = self._clock() - start
        if error is None and latency > self.timeout:
            error, message = "timeout", f"attempt took {latency:.3f}s > timeout {self.timeout}s"
            value = None
        if error is not None:
            with self._lock:
                self._messages[error] = message
        return Sample(start, self.journey, customer, error is None, latency, error, value)

    def _record(self, sample: Sample) -> bool:
        """Keep the sample; False (and stop everyone) once a bound is reached."""
        with self._lock:
            if len(self._samples) < self.max_samples:
                self._samples.append(sample)
                self._last = sample.t if self._last is None else max(self._last, sample.t)
            if len(self._samples) >= self.max_samples:
                self.exhausted = self.exhausted or "max_samples"
            elif self._clock() - (self._started_at or 0.0) >= self.max_duration:
                self.exhausted = self.exhausted or "max_duration"
            if self.exhausted is not None:
                self._stop.set()
        return self.exhausted is None


def _require_positive(journey: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(
                f"probe for journey {journey!r}: {name} must be positive, got {value!r}"
                " (check the journey in chaos.yaml)"
            )


class ProbeSet:
    """One Probe per journey, started and stopped together."""

    def __init__(self, probes: Iterable[Probe]) -> None:
        self._probes = {probe.journey: probe for probe in probes}

    @classmethod
    def from_journeys(
        cls,
        journeys: Iterable[Any],
        endpoint: Endpoint,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_samples: int = 100_000,
        max_duration: float = 3600.0,
        near: Path | None = None,
    ) -> ProbeSet:
        """Probes for catalog journeys (name, customers, interval, timeout, steps or call).

        `near` (the catalog's folder) is where Python journeys are looked for when their module
        is not importable as is.
        """
        return cls(
            Probe(
                journey.name,
                journey_action(journey, endpoint, near),
                customers=journey.customers,
                interval=journey.interval,
                timeout=journey.timeout,
                endpoint=endpoint,
                clock=clock,
                max_samples=max_samples,
                max_duration=max_duration,
            )
            for journey in journeys
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._probes)

    def __getitem__(self, journey: str) -> Probe:
        try:
            return self._probes[journey]
        except KeyError:
            known = ", ".join(sorted(self._probes)) or "none"
            raise ExperimentMisuse(
                f"no probe for journey {journey!r}; probed journeys: {known} (see chaos.yaml)"
            ) from None

    def __iter__(self) -> Iterator[Probe]:
        return iter(self._probes.values())

    def __len__(self) -> int:
        return len(self._probes)

    def start(self) -> None:
        """Start every probe; if one fails to start, the ones already running are stopped."""
        started: list[Probe] = []
        try:
            for probe in self:
                probe.start()
                started.append(probe)
        except BaseException:
            for probe in reversed(started):
                probe.stop()
            raise

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop every probe within `timeout` seconds overall; False if a customer is stuck."""
        for probe in self:
            probe.signal_stop()
        deadline = time.monotonic() + timeout
        return all([probe.stop(max(0.0, deadline - time.monotonic())) for probe in self])

    def samples(self, journey: str, since: float | None = None) -> list[Sample]:
        return self[journey].samples(since)

    def all_samples(self, since: float | None = None) -> dict[str, list[Sample]]:
        """Samples of every journey, by journey name."""
        return {name: probe.samples(since) for name, probe in self._probes.items()}

    def __enter__(self) -> ProbeSet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def check_steady_state(
    probes: ProbeSet,
    slos: Mapping[str, SloLike],
    *,
    since: float,
    min_samples: int | None = None,
) -> dict[str, SloVerdict]:
    """Per journey: since `since`, is there a recovery point after which the SLO holds?

    Uses impact.steady_verdict with hold = the probe's customers (one success per customer in a
    row) and at least `min_samples` samples from that point (default: two rounds of customers,
    so one lucky round of a flapping service is not mistaken for steady state).
    """
    verdicts: dict[str, SloVerdict] = {}
    for name, slo in slos.items():
        probe = probes[name]
        needed = min_samples if min_samples is not None else 2 * probe.customers
        verdicts[name] = steady_verdict(
            probe.samples(since), slo, hold=probe.customers, min_samples=needed
        )
    return verdicts


def wait_for_steady_state(
    probes: ProbeSet,
    slos: Mapping[str, SloLike],
    *,
    since: float,
    timeout: float,
    poll: float,
    clock: Callable[[], float] = time.monotonic,
    min_samples: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Poll check_steady_state every `poll` s; the clock time it first held, or None on timeout.

    The deadline is checked after each poll, so the wait may overrun `timeout` by one `poll`.
    """

    def check() -> SteadyState:
        now = clock()
        return SteadyState(
            now, check_steady_state(probes, slos, since=since, min_samples=min_samples)
        )

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(poll),
        retry=retry_if_result(lambda state: not state.holds),
        retry_error_callback=lambda _state: None,
        sleep=sleep,
    )
    state = retrying(check)
    return state.at if state is not None else None
