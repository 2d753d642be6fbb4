"""The process supervisor with real processes: restart policies, stops, groups, ledger, recipes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.environments.local_spec import LocalService, RestartPolicy
from chaos.environments.restart_policy import EventKind, recovery_times
from chaos.environments.supervisor import Launch, ServiceState, Supervisor
from chaos.errors import EnvironmentFailure, FaultError, UnknownTarget
from chaos.ledger import Ledger
from chaos.procfs import proc_stat
from faults.base import NOTHING_TO_REVERT
from faults.process import RECIPE_ACTIONS

HTTPSVC = Path(__file__).parent.parent / "fixtures" / "services" / "httpsvc.py"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tcp_health(port: int):
    def check(_: str) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    return check


def gone(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is None or stat.state == "Z"


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def get(port: int, path: str, timeout: float = 2.0) -> str:
    url = f"http://127.0.0.1:{port}{path}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def service(
    name: str = "svc",
    *,
    command: tuple[str, ...] | None = None,
    port: int = 0,
    restart: RestartPolicy = RestartPolicy.ON_FAILURE,
    env: dict[str, str] | None = None,
    stop_grace: float = 2.0,
    setup: tuple[str, ...] | None = None,
    cwd: Path = HTTPSVC.parent,
) -> LocalService:
    return LocalService(
        name=name,
        command=command or (sys.executable, str(HTTPSVC)),
        cwd=cwd,
        env=env or {},
        host="127.0.0.1",
        port=port,
        restart=restart,
        ready_timeout=10.0,
        stop_grace=stop_grace,
        setup=setup,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path, run_id="test-run") as led:
        yield led


@pytest.fixture
def make(tmp_path: Path, ledger: Ledger) -> Iterator:
    """Build a supervisor for one service; shut it down after the test."""
    supervisors: list[Supervisor] = []

    def build(spec: LocalService, **kwargs) -> Supervisor:
        sup = Supervisor(
            run_id="test-run", state_dir=tmp_path, tracker=ledger, health=tcp_health(spec.port)
        )
        sup.register(Launch(spec, "127.0.0.1", spec.port, kwargs.get("env", {})))
        supervisors.append(sup)
        return sup

    yield build
    for sup in supervisors:
        sup.shutdown()


def start_ready(sup: Supervisor, name: str = "svc") -> None:
    since = time.monotonic()
    sup.start(name)
    sup.wait_for(name, EventKind.READY, since=since, timeout=10)


def test_environment_and_log_of_a_started_service(make, ledger: Ledger, tmp_path: Path) -> None:
    port = free_port()
    sup = make(service(port=port, env={"FROM_SPEC": "1"}), env={"UPSTREAM_URL": "http://x:1"})
    start_ready(sup)
    assert json.loads(get(port, "/pid"))["pid"] == sup.pid("svc")
    environ = Path(f"/proc/{sup.pid('svc')}/environ").read_bytes().split(b"\0")
    for pair in (b"HOST=127.0.0.1", f"PORT={port}".encode(), b"CHAOS_SERVICE=svc"):
        assert pair in environ
    assert b"CHAOS_RUN_ID=test-run" in environ and b"FROM_SPEC=1" in environ
    assert b"UPSTREAM_URL=http://x:1" in environ
    assert [e.description for e in ledger.open_entries] == [
        f"local service svc (pid {sup.pid('svc')})"
    ]
    assert "listening on" in sup.log_tail("svc")
    assert (tmp_path / "logs" / "svc.log").exists()


def test_crash_is_healed_by_on_failure_policy_and_timed(make, ledger: Ledger) -> None:
    port = free_port()
    sup = make(service(port=port))
    start_ready(sup)
    old = sup.pid("svc")
    crashed_at = time.monotonic()
    sup.crash("svc")
    exited = sup.wait_for("svc", EventKind.EXITED, since=crashed_at, timeout=2)
    assert (exited.code, exited.requested) == (-signal.SIGKILL, False)
    sup.wait_for("svc", EventKind.RESTARTED, since=crashed_at, timeout=3)
    sup.wait_for("svc", EventKind.READY, since=crashed_at, timeout=10)
    new = sup.pid("svc")
    assert new is not None and new != old and gone(old)
    assert get(port, "/echo") == "ok"
    [heal] = recovery_times(sup.events(), "svc")
    assert 0.1 <= heal < 5.0  # at least the first backoff step
    assert len(ledger.open_entries) == 1  # the crashed process's entry was released


def test_policy_no_leaves_a_crashed_service_down(make) -> None:
    sup = make(service(port=free_port(), restart=RestartPolicy.NO))
    start_ready(sup)
    sup.crash("svc")
    time.sleep(0.4)  # longer than the first backoff step
    assert sup.state("svc") is ServiceState.EXITED
    assert not any(e.kind is EventKind.RESTARTED for e in sup.events())


@pytest.mark.parametrize(
    ("policy", "restarted"), [(RestartPolicy.ALWAYS, True), (RestartPolicy.ON_FAILURE, False)]
)
def test_clean_exit_restarts_only_under_always(make, policy, restarted: bool) -> None:
    env = {"EXIT_AFTER": "0.3", "EXIT_CODE": "0"}
    sup = make(service(port=free_port(), restart=policy, env=env))
    start_ready(sup)
    exited = sup.wait_for("svc", EventKind.EXITED, since=0, timeout=5)
    assert exited.code == 0
    time.sleep(0.3)
    kinds = [e.kind for e in sup.events()]
    assert (EventKind.RESTARTED in kinds) is restarted


def test_restarts_back_off_exponentially(make) -> None:
    failing = (sys.executable, "-c", "import sys; sys.exit(3)")
    sup = make(service(command=failing, port=free_port()))
    sup.start("svc")
    assert wait_until(
        lambda: sum(e.kind is EventKind.RESTARTED for e in sup.events()) >= 4, timeout=5
    )
    sup.stop("svc")
    starts = [e.at for e in sup.events() if e.kind in (EventKind.STARTED, EventKind.RESTARTED)]
    gaps = [b - a for a, b in itertools.pairwise(starts)][:4]
    for gap, floor in zip(gaps, (0.1, 0.2, 0.4, 0.8), strict=True):
        assert floor <= gap < floor + 0.5
    crashes = [e.code for e in sup.events() if e.kind is EventKind.EXITED and not e.requested]
    assert len(crashes) >= 4 and set(crashes) == {3}


def test_stop_is_not_restarted_and_kills_the_whole_group(make, ledger: Ledger) -> None:
    port = free_port()
    sup = make(service(port=port, env={"SPAWN_CHILD": "1"}))
    start_ready(sup)
    child = json.loads(get(port, "/pid"))["child"]
    main = sup.pid("svc")
    sup.stop("svc")
    assert gone(main) and wait_until(lambda: gone(child), 2)
    time.sleep(0.3)
    assert sup.state("svc") is ServiceState.STOPPED and not sup.is_running("svc")
    kinds = [e.kind for e in sup.events()]
    assert kinds[-2:] == [EventKind.EXITED, EventKind.STOPPED] and EventKind.RESTARTED not in kinds
    assert ledger.open_entries == []


def test_crash_of_the_main_process_also_removes_its_workers(make) -> None:
    port = free_port()
    sup = make(service(port=port, env={"SPAWN_CHILD": "1"}, restart=RestartPolicy.NO))
    start_ready(sup)
    child = json.loads(get(port, "/pid"))["child"]
    sup.crash("svc")
    assert wait_until(lambda: gone(child), 2)


def test_stop_escalates_to_sigkill_after_the_grace_period(make) -> None:
    stubborn = (
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    )
    sup = make(service(command=stubborn, port=free_port(), stop_grace=0.3))
    sup.start("svc")
    time.sleep(0.2)  # let it install its handler
    began = time.monotonic()
    sup.stop("svc")
    took = time.monotonic() - began
    exited = [e for e in sup.events() if e.kind is EventKind.EXITED][-1]
    assert exited.code == -signal.SIGKILL and exited.requested
    assert 0.3 <= took < 1.5


def test_pause_resume_and_stop_of_a_paused_service(make) -> None:
    port = free_port()
    sup = make(service(port=port))
    start_ready(sup)
    sup.pause("svc")
    assert proc_stat(sup.pid("svc")).state == "T" and sup.state("svc") is ServiceState.PAUSED
    with pytest.raises(OSError):
        get(port, "/echo", timeout=0.3)
    sup.resume("svc")
    assert get(port, "/echo") == "ok"
    sup.pause("svc")
    sup.stop("svc")  # SIGTERM must reach a frozen process: it is woken with SIGCONT
    assert [e.code for e in sup.events() if e.kind is EventKind.EXITED] == [0]


def test_restart_is_requested_and_setup_runs_once(make, tmp_path: Path) -> None:
    marker = tmp_path / "setup-runs"
    setup = (sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')")
    sup = make(service(port=free_port(), setup=setup))
    start_ready(sup)
    first = sup.pid("svc")
    sup.restart("svc")
    assert sup.pid("svc") != first and gone(first)
    assert [e.requested for e in sup.events() if e.kind is EventKind.EXITED] == [True]
    assert marker.read_text() == "x"


def test_failing_setup_and_bad_command_are_clear_errors(make, tmp_path: Path) -> None:
    bad_setup = make(service("a", port=free_port(), setup=(sys.executable, "-c", "exit(7)")))
    with pytest.raises(Exception, match=r"setup of service 'a'.*exited with 7"):
        bad_setup.start("a")
    missing = make(service("b", command=("/nonexistent/binary",), port=free_port()))
    with pytest.raises(Exception, match=r"cannot start service 'b'.*services.b.command"):
        missing.start("b")


def test_lifecycle_errors_name_the_service(make) -> None:
    sup = make(service(port=free_port()))
    with pytest.raises(UnknownTarget, match=r"'nope'.*svc"):
        sup.crash("nope")
    with pytest.raises(FaultError, match="cannot crash service 'svc': it is not running"):
        sup.crash("svc")
    with pytest.raises(FaultError, match="no revert recipe"):
        sup.revert_recipe("explode", "svc")


def test_pause_recipe_resumes_from_a_fresh_state(make) -> None:
    port = free_port()
    sup = make(service(port=port))
    start_ready(sup)
    assert sup.revert_recipe("kill", "svc") == NOTHING_TO_REVERT
    recipe = sup.revert_recipe("pause", "svc")
    assert recipe.action == "process.signal"
    sup.pause("svc")
    RECIPE_ACTIONS[recipe.action](**recipe.to_json()["args"])  # as the sweeper would
    assert proc_stat(sup.pid("svc")).state != "T"
    assert get(port, "/echo") == "ok"


# --- recipe actions on processes we do not supervise ---------------------------------------

WORKER = (
    "import subprocess, sys, time;"
    "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "print(c.pid, flush=True); time.sleep(60)"
)


@pytest.fixture
def session_leader() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process in its own session with one worker child; yields (leader, worker pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    worker = int(proc.stdout.readline())
    yield proc, worker
    for pid in (proc.pid, worker):
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=5)


def test_kill_group_recipe_removes_leader_and_workers(session_leader) -> None:
    proc, worker = session_leader
    args = {"pid": proc.pid, "pgid": proc.pid, "service": "x"}
    ticks = proc_stat(proc.pid).start_ticks
    RECIPE_ACTIONS["process.kill_group"](**args, start_ticks=ticks + 1)  # not the same process
    assert proc.poll() is None and not gone(worker)
    RECIPE_ACTIONS["process.kill_group"](**args, start_ticks=ticks)
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert wait_until(lambda: gone(worker), 2)
    RECIPE_ACTIONS["process.kill_group"](**args, start_ticks=ticks)  # idempotent


def test_kill_group_recipe_finds_orphaned_workers_of_a_dead_leader(session_leader) -> None:
    proc, worker = session_leader
    ticks = proc_stat(proc.pid).start_ticks
    proc.kill()
    proc.wait(timeout=5)
    assert not gone(worker)
    RECIPE_ACTIONS["process.kill_group"](pid=proc.pid, pgid=proc.pid, start_ticks=ticks)
    assert wait_until(lambda: gone(worker), 2)


def test_signal_recipe_checks_identity_and_is_idempotent(session_leader) -> None:
    proc, _ = session_leader
    ticks = proc_stat(proc.pid).start_ticks
    send = RECIPE_ACTIONS["process.signal"]
    send(pid=proc.pid, start_ticks=ticks + 1, signal="SIGKILL")
    assert proc.poll() is None
    send(pid=proc.pid, start_ticks=ticks, signal="SIGSTOP", group=True)
    assert wait_until(lambda: proc_stat(proc.pid).state == "T", 2)
    send(pid=proc.pid, start_ticks=ticks, signal="SIGCONT", group=True)
    assert wait_until(lambda: proc_stat(proc.pid).state != "T", 2)
    send(pid=proc.pid, start_ticks=ticks, signal="SIGKILL")
    assert proc.wait(timeout=5) == -signal.SIGKILL
    send(pid=proc.pid, start_ticks=ticks, signal="SIGKILL")  # gone: success
    with pytest.raises(FaultError, match="SIGNOPE"):
        send(pid=proc.pid, start_ticks=ticks, signal="SIGNOPE")


def test_no_start_after_shutdown(make) -> None:
    sup = make(service(port=free_port()))
    start_ready(sup)
    sup.shutdown()
    sup.shutdown()  # idempotent
    assert not sup.is_running("svc")
    with pytest.raises(EnvironmentFailure, match="supervisor is shut down"):
        sup.start("svc")
