"""Local processes under restart policies, so that a crash and a self-healing restart are real."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

from chaos.environments.local_spec import LocalService
from chaos.environments.process_waits import EXIT_WAIT, child_exited, wait_child_exit, wait_stopped
from chaos.environments.restart_policy import (
    Backoff,
    EventKind,
    LifecycleEvent,
    decide_restart,
)
from chaos.errors import EnvironmentFailure, FaultError, UnknownTarget
from chaos.procfs import proc_stat, signal_group
from faults.base import NOTHING_TO_REVERT, Recipe

POLL_INTERVAL = 0.05  # seconds between two looks of the monitor thread
SETUP_TIMEOUT = 300.0  # bound on a service's one-time `setup` command
DEFAULT_BACKOFF = Backoff()


class ResourceTracker(Protocol):
    """Records each spawned process before it can outlive us (the run's ledger implements it)."""

    def acquire(self, description: str, recipe: Recipe) -> str:
        """Durably record `recipe` (how to remove the resource); return a token for release()."""
        ...

    def release(self, token: str) -> None:
        """The resource is gone: forget it."""
        ...


class ServiceState(StrEnum):
    """Where a supervised service is, as reconciliation sees it."""

    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"  # exited; the policy restarts it after a backoff
    STOPPED = "stopped"  # never started, or stopped on purpose
    EXITED = "exited"  # exited on its own and the policy does not restart it


# --- the supervisor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How to run one service: its local.yaml entry, listen address and extra environment."""

    spec: LocalService
    host: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class _Slot:
    """Mutable state of one service; only touched with the supervisor's lock held."""

    launch: Launch
    proc: subprocess.Popen[bytes] | None = None
    start_ticks: int | None = None
    token: str | None = None
    started_at: float = 0.0
    wanted: bool = False
    paused: bool = False
    failures: int = 0
    restart_at: float | None = None
    awaiting_ready: bool = False
    setup_done: bool = False


class Supervisor:
    """Runs services as process groups, applies restart policies, records lifecycle events.

    Implements ServiceLifecycle. A monitor thread polls every `poll_interval` seconds for exits
    (without reaping first, so a pid is never reused while we may still signal its group),
    restarts per policy with backoff, and records `ready` once `health(service)` answers True.
    """

    def __init__(
        self,
        *,
        run_id: str,
        state_dir: Path,
        tracker: ResourceTracker | None = None,
        health: Callable[[str], bool] | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.run_id = run_id
        self.log_dir = Path(state_dir) / "logs"
        self._tracker = tracker
        self._health = health
        self._backoff = backoff
        self._poll = poll_interval
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._slots: dict[str, _Slot] = {}
        self._events: list[LifecycleEvent] = []
        self._closing = threading.Event()
        self._monitor: threading.Thread | None = None

    # registration and introspection

    def register(self, launch: Launch) -> None:
        """Declare a service (not started yet)."""
        with self._lock:
            if launch.name in self._slots:
                raise EnvironmentFailure(f"service {launch.name!r} is already supervised")
            self._slots[launch.name] = _Slot(launch)

    @property
    def services(self) -> list[str]:
        return list(self._slots)

    def log_path(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = 20) -> str:
        """The last lines of the service's log, for error messages."""
        try:
            text = self.log_path(service).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def events(self, service: str | None = None) -> list[LifecycleEvent]:
        with self._lock:
            return [e for e in self._events if service is None or e.service == service]

    def wait_for(
        self, service: str, kind: EventKind, *, since: float, timeout: float
    ) -> LifecycleEvent:
        """The first `kind` event of `service` at or after `since` (monotonic), waiting ≤ timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    if event.service == service and event.kind is kind and event.at >= since:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EnvironmentFailure(
                        f"service {service!r}: no {kind.value!r} event within {timeout:.1f}s; "
                        f"last log lines of {self.log_path(service)}:\n{self.log_tail(service)}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def state(self, service: str) -> ServiceState:
        with self._lock:
            slot = self._slot(service)
            if slot.proc is not None and not child_exited(slot.proc.pid):
                return ServiceState.PAUSED if slot.paused else ServiceState.RUNNING
            if slot.restart_at is not None or (slot.proc is not None and slot.wanted):
                return ServiceState.RESTARTING
            return ServiceState.EXITED if slot.wanted else ServiceState.STOPPED

    def pid(self, service: str) -> int | None:
        """Main pid of the running service (None when not running)."""
        with self._lock:
            slot = self._slot(service)
            return slot.proc.pid if slot.proc is not None else None

    # ServiceLifecycle

    def start(self, service: str) -> None:
        """Start the service (no-op when running); runs its `setup` command before the first start."""
        slot = self._slot(service)
        if self._closing.is_set():
            raise EnvironmentFailure(
                f"cannot start service {service!r}: its supervisor is shut down (the environment "
                "was stopped); start a new environment"
            )
        if not slot.setup_done:
            self._run_setup(slot)
        with self._lock:
            if slot.proc is not None:
                return
            slot.wanted, slot.restart_at, slot.failures = True, None, 0
            self._spawn(slot, EventKind.STARTED)
        self._ensure_monitor()

    def stop(self, service: str) -> None:
        """SIGTERM the group, SIGKILL after stop_grace; the restart policy does not apply."""
        with self._lock:
            slot = self._slot(service)
            slot.wanted, slot.restart_at = False, None
            proc = slot.proc
            if proc is None:
                return
            signal_group(proc.pid, signal.SIGTERM)
            signal_group(proc.pid, signal.SIGCONT)  # a paused process must wake to see SIGTERM
        if not wait_child_exit(proc.pid, slot.launch.spec.stop_grace):
            signal_group(proc.pid, signal.SIGKILL)
            wait_child_exit(proc.pid, EXIT_WAIT)
        with self._lock:
            if slot.proc is proc:
                self._on_exit(slot, requested=True)
            self._record(service, EventKind.STOPPED, pid=proc.pid)

    def crash(self, service: str) -> None:
        """SIGKILL the main process only, like a crash: the restart policy applies."""
        with self._lock:
            proc = self._running(service, "crash").proc
            assert proc is not None
            os.kill(proc.pid, signal.SIGKILL)
        wait_child_exit(proc.pid, EXIT_WAIT)
        with self._lock:
            slot = self._slot(service)
            if slot.proc is proc:
                self._on_exit(slot, requested=False)

    def pause(self, service: str) -> None:
        """SIGSTOP the whole group (no-op when already paused)."""
        with self._lock:
            slot = self._running(service, "pause")
            if not slot.paused and slot.proc is not None:
                signal_group(slot.proc.pid, signal.SIGSTOP)
                wait_stopped(slot.proc.pid, True)
                slot.paused = True
                self._record(service, EventKind.PAUSED, pid=slot.proc.pid)

    def resume(self, service: str) -> None:
        """SIGCONT the group (no-op when not paused)."""
        with self._lock:
            slot = self._slot(service)
            if slot.paused and slot.proc is not None:
                signal_group(slot.proc.pid, signal.SIGCONT)
                wait_stopped(slot.proc.pid, False)
                slot.paused = False
                self._record(service, EventKind.RESUMED, pid=slot.proc.pid)

    def restart(self, service: str) -> None:
        """Orderly stop, then start."""
        self.stop(service)
        self.start(service)

    def is_running(self, service: str) -> bool:
        with self._lock:
            proc = self._slot(service).proc
            return proc is not None and not child_exited(proc.pid)

    def is_paused(self, service: str) -> bool:
        with self._lock:
            return self._slot(service).paused

    def revert_recipe(self, action: str, service: str) -> Recipe:
        """How a fresh process undoes `action`: pause → SIGCONT the group; the rest need nothing.

        A stopped or killed service cannot be restarted without this supervisor; if the owner
        dies, its services are removed by their own `process.kill_group` ledger entries instead.
        """
        if action in ("kill", "crash", "stop", "restart"):
            self._slot(service)
            return NOTHING_TO_REVERT
        if action != "pause":
            raise FaultError(
                f"no revert recipe for process action {action!r} on {service!r}; "
                "known actions: kill, stop, pause, restart"
            )
        with self._lock:
            slot = self._running(service, "pause")
            assert slot.proc is not None
            args = {"pid": slot.proc.pid, "start_ticks": slot.start_ticks, "signal": "SIGCONT"}
            return Recipe("process.signal", {**args, "group": True, "service": service})

    def shutdown(self, order: Sequence[str] = ()) -> None:
        """Stop every service (those in `order` first, in that order) and the monitor; idempotent."""
        names = list(dict.fromkeys([*order, *self._slots]))
        errors: list[str] = []
        for name in names:
            try:
                self.stop(name)
            except Exception as err:  # keep stopping the others; report all at the end
                errors.append(f"{name}: {err}")
        self._closing.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5.0)
        if errors:
            raise EnvironmentFailure("could not stop every service: " + "; ".join(errors))

    # internals

    def _slot(self, service: str) -> _Slot:
        try:
            return self._slots[service]
        except KeyError:
            valid = ", ".join(self._slots) or "(none)"
            raise UnknownTarget(
                f"no supervised service {service!r}; supervised services: {valid}"
            ) from None

    def _running(self, service: str, action: str) -> _Slot:
        slot = self._slot(service)
        if slot.proc is None or child_exited(slot.proc.pid):
            raise FaultError(
                f"cannot {action} service {service!r}: it is not running "
                f"({self.state(service).value}); start it or reconcile the environment first"
            )
        return slot

    def _record(self, service: str, kind: EventKind, **fields: object) -> None:
        event = LifecycleEvent(time.monotonic(), time.time(), service, kind, **fields)  # type: ignore[arg-type]
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def _io(self, launch: Launch, log: IO[bytes]) -> dict[str, Any]:
        """Where a service's commands run: its cwd and environment, output to its log."""
        return {
            "cwd": launch.spec.cwd,
            "env": self._environment(launch),
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
        }

    def _environment(self, launch: Launch) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(launch.spec.env)
        env.update(launch.env)
        env.update(
            HOST=launch.host,
            PORT=str(launch.port),
            CHAOS_SERVICE=launch.name,
            CHAOS_RUN_ID=self.run_id,
        )
        return env

    def _open_log(self, service: str, what: str) -> IO[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(service), "ab")  # noqa: SIM115 - handed to the child, closed after
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"--- pytest-chaos: {what} {service} at {stamp} ---\n".encode())
        log.flush()
        return log

    def _run_setup(self, slot: _Slot) -> None:
        spec = slot.launch.spec
        if spec.setup:
            log = self._open_log(spec.name, "setup " + " ".join(spec.setup))
            try:
                result = subprocess.run(
                    spec.setup, **self._io(slot.launch, log), timeout=SETUP_TIMEOUT, check=False
                )
                failure = None if result.returncode == 0 else f"exited with {result.returncode}"
            except (OSError, subprocess.TimeoutExpired) as err:
                failure = str(err)
            finally:
                log.close()
            if failure:
                raise EnvironmentFailure(
                    f"setup of service {spec.name!r} ({list(spec.setup)} in {spec.cwd}) failed: "
                    f"{failure}; fix services.{spec.name}.setup in local.yaml. Last log lines:\n"
                    + self.log_tail(spec.name)
                )
        slot.setup_done = True

    def _spawn(self, slot: _Slot, kind: EventKind) -> None:
        """Start the process in its own session and record it with the tracker (lock held)."""
        spec = slot.launch.spec
        log = self._open_log(spec.name, kind.value)
        try:
            proc = subprocess.Popen(
                spec.command, **self._io(slot.launch, log), start_new_session=True
            )
        except OSError as err:
            raise EnvironmentFailure(
                f"cannot start service {spec.name!r}: {list(spec.command)} in {spec.cwd}: {err}; "
                f"check services.{spec.name}.command and cwd in local.yaml"
            ) from err
        finally:
            log.close()
        stat = proc_stat(proc.pid)
        ticks = stat.start_ticks if stat else None
        if self._tracker is not None:
            recipe = Recipe(
                "process.kill_group",
                {"pid": proc.pid, "pgid": proc.pid, "start_ticks": ticks, "service": spec.name},
            )
            try:
                slot.token = self._tracker.acquire(
                    f"local service {spec.name} (pid {proc.pid})", recipe
                )
            except BaseException:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=EXIT_WAIT)
                raise
        slot.proc, slot.start_ticks, slot.paused = proc, ticks, False
        slot.started_at, slot.awaiting_ready = time.monotonic(), True
        self._record(spec.name, kind, pid=proc.pid)

    def _on_exit(self, slot: _Slot, *, requested: bool) -> None:
        """The main process exited: kill what is left of its group, reap, apply the policy."""
        proc = slot.proc
        assert proc is not None
        if proc.returncode is None:  # not reaped yet: the group id cannot have been reused
            signal_group(proc.pid, signal.SIGKILL)
        try:
            code = proc.wait(timeout=EXIT_WAIT)
        except subprocess.TimeoutExpired as err:
            raise EnvironmentFailure(
                f"service {slot.launch.name!r} (pid {proc.pid}) did not die after SIGKILL; "
                f"remove it with `kill -9 -{proc.pid}`"
            ) from err
        slot.proc, slot.paused, slot.awaiting_ready = None, False, False
        token, slot.token = slot.token, None
        now = time.monotonic()
        self._record(
            slot.launch.name, EventKind.EXITED, pid=proc.pid, code=code, requested=requested
        )
        decision = decide_restart(
            slot.launch.spec.restart,
            code,
            requested=requested or not slot.wanted,
            ran_for=now - slot.started_at,
            failures=slot.failures,
            backoff=self._backoff,
        )
        slot.failures = decision.failures
        slot.restart_at = now + decision.delay if decision.restart else None
        if token is not None and self._tracker is not None:
            self._tracker.release(token)

    def _ensure_monitor(self) -> None:
        with self._lock:
            if self._monitor is None and not self._closing.is_set():
                self._monitor = threading.Thread(
                    target=self._watch, name="chaos-supervisor", daemon=True
                )
                self._monitor.start()

    def _watch(self) -> None:
        while not self._closing.wait(self._poll):
            for name in list(self._slots):
                try:
                    self._tick(self._slots[name])
                except Exception as err:  # keep supervising the others; surface it as an event
                    with self._lock:
                        self._slots[name].restart_at = None
                    self._record(name, EventKind.FAILED, detail=str(err))

    def _tick(self, slot: _Slot) -> None:
        """One look at one service: notice an exit, run a due restart, notice readiness."""
        with self._lock:
            if slot.proc is not None and child_exited(slot.proc.pid):
                self._on_exit(slot, requested=not slot.wanted)
            due = slot.restart_at is not None and time.monotonic() >= slot.restart_at
            if slot.proc is None and due and slot.wanted:
                slot.restart_at = None
                self._spawn(slot, EventKind.RESTARTED)
            proc = slot.proc
            check = proc is not None and slot.awaiting_ready and not slot.paused
        if check and self._health is not None and self._health(slot.launch.name):
            with self._lock:
                if slot.proc is proc and slot.awaiting_ready:
                    slot.awaiting_ready = False
                    self._record(slot.launch.name, EventKind.READY, pid=proc.pid if proc else None)
