"""pytest wiring for pytest-chaos: options, marker, fixtures and hooks; the logic lives in the classes it calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.environments.base import Environment
from chaos.experiment import Experiment
from chaos.parallel import KEY, WorkerMerge, WorkerRole, worker_input, worker_output
from chaos.record import ExperimentRecord
from chaos.report.allure import step_title
from chaos.report.terminal import coverage_lines, summary
from chaos.session import ChaosSession
from chaos.settings import OPTIONS, marker_overrides, resolve_settings
from chaos.signals import OrderlyStop, drop_lineless_frames
from chaos.units import format_duration

SESSION_KEY = pytest.StashKey[ChaosSession]()
STOP_KEY = pytest.StashKey[OrderlyStop]()
EXPERIMENT_KEY = pytest.StashKey[Experiment]()
REPORT_LINES_KEY = pytest.StashKey[list[str]]()
MERGE_KEY = pytest.StashKey[WorkerMerge]()  # pytest-xdist controller: the workers' records

MARKER_HELP = (
    "chaos(rto=None, baseline=None): a failure experiment. rto: recovery objective such as '15s' "
    "(default: the catalog's RTO of the faulted service); baseline: steady-state sampling time "
    "before the first fault (default --chaos-baseline)."
)

MATRIX_HELP = (
    "chaos_matrix(tier=None, kinds=None): parametrize the `failure_mode` argument with every failure "
    "mode the catalog requires (of one tier / some fault kinds); build its fault with "
    "failure_mode.fault(**params)."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "failure-mode experiments (pytest-chaos)")
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=f"chaos_{opt.name}", default=None, help=opt.help)
        parser.addini(f"chaos_{opt.name}", help=opt.help, default=None)


class ChaosHookspecs:
    """Extension points: reporters are implementations of these hooks (ours are `trylast`)."""

    @pytest.hookspec
    def pytest_chaos_experiment_recorded(self, item: pytest.Item, record: ExperimentRecord) -> None:
        """An experiment's record is final (its test's teardown is done, its report still open)."""

    @pytest.hookspec
    def pytest_chaos_session_reports(self, config: pytest.Config, session: ChaosSession) -> None:
        """The session is closed and its journal written: write session-level reports."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(ChaosHookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(DefaultReporters(config), "chaos-reporters")
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", MATRIX_HELP)
    settings = resolve_settings(
        {opt.name: config.getoption(f"chaos_{opt.name}") for opt in OPTIONS},
        config.getini,
        rootdir=Path(config.rootpath),
    )
    workerinput = getattr(config, "workerinput", None)  # set on pytest-xdist workers only
    role = None if workerinput is None else WorkerRole.from_workerinput(workerinput)
    config.stash[SESSION_KEY] = chaos = ChaosSession(settings, role)
    if workerinput is None and config.pluginmanager.hasplugin("xdist"):
        config.stash[MERGE_KEY] = WorkerMerge()
        config.pluginmanager.register(
            XdistController(chaos, config.stash[MERGE_KEY]), "chaos-xdist"
        )
    stop = OrderlyStop()
    stop.install()
    config.stash[STOP_KEY] = stop
    config.add_cleanup(stop.uninstall)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].start()


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    drop_lineless_frames(excinfo.value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    chaos = config.stash[SESSION_KEY]
    s = chaos.settings
    lines = [
        f"chaos: run {chaos.run_id}, env {s.env}, seed {s.seed}, "
        f"catalog {s.catalog or '-'}, results {s.results}"
    ]
    if chaos.sweep_report is not None:
        lines += [f"chaos clean-up of earlier runs: {line}" for line in chaos.sweep_report.lines()]
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "experiment" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "chaos"
        ):
            item.add_marker(pytest.mark.chaos)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "failure_mode" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("chaos_matrix")
    modes = metafunc.config.stash[SESSION_KEY].matrix(**(marker.kwargs if marker else {}))
    metafunc.parametrize("failure_mode", modes, ids=[mode.id for mode in modes])


class _PhaseLines:
    """Prints `[inject latency 800ms on orders -> payments] 3ms` lines under the test with -v.

    Written past pytest's output capture (as live progress must be), not into the test's
    captured stdout.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._reporter = config.pluginmanager.get_plugin("terminalreporter")
        self._capture = config.pluginmanager.get_plugin("capturemanager")
        self._enabled = config.get_verbosity() > 0 and self._reporter is not None

    def phase(self, name: str, detail: str, seconds: float) -> None:
        if not self._enabled or not (detail or seconds):  # not the bare end-of-window marker
            return
        line = f"    [{step_title(name, detail)}] {format_duration(seconds)}"
        if self._capture is None:
            self._reporter.write_line(line)
            return
        with self._capture.global_and_fixture_disabled():
            self._reporter.ensure_newline()
            self._reporter.write_line(line)


@pytest.fixture(scope="session")
def chaos_environment(pytestconfig: pytest.Config) -> Environment:
    """The running environment of this session (started on first use, stopped at the end)."""
    return pytestconfig.stash[SESSION_KEY].environment()


@pytest.fixture
def experiment(request: pytest.FixtureRequest) -> Iterator[Experiment]:
    """A failure experiment whose steady state was verified during setup.

    The baseline runs here, in setup, so a system that is unhealthy before any fault makes the
    test an *error* (the experiment is broken), never a failure.
    """
    chaos = request.config.stash[SESSION_KEY]
    marker = request.node.get_closest_marker("chaos")
    overrides = marker_overrides(marker.kwargs, request.node.nodeid) if marker else {}
    exp = chaos.experiment(request.node.nodeid, overrides, _PhaseLines(request.config))
    request.node.stash[EXPERIMENT_KEY] = exp
    try:
        exp.baseline()
        yield exp
    except BaseException as err:
        if exp.record is None:
            exp.finish(test_id=request.node.nodeid, error=err)
        raise
    finally:
        if exp.record is None:  # the call phase never reached finish
            exp.finish(test_id=request.node.nodeid, error=RuntimeError("test did not complete"))
        chaos.add(exp.record)


@pytest.fixture
def chaos_search(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Call it with SearchSettings fields but seed (kinds=, horizon=, max_examples=…), invariants=.

    Runs the search on the session's environment, adds one record to the run's journal and
    raises the minimal failure (NotRecovered, ImpactExceeded or InvariantViolated) if any.
    """
    from chaos.schedules import ScheduleSearch, SearchSettings  # Hypothesis: only when searching

    def search(*, invariants: Any = (), **options: Any) -> Any:
        chaos = request.config.stash[SESSION_KEY]
        marker = request.node.get_closest_marker("chaos")
        overrides = marker_overrides(marker.kwargs, request.node.nodeid) if marker else {}
        found = ScheduleSearch.from_session(
            chaos,
            request.node.nodeid,
            SearchSettings(seed=chaos.settings.seed, **options),  # --chaos-seed replays it
            invariants=invariants,
            overrides=overrides,
        ).search()
        if found.record is not None:
            chaos.add(found.record)
        found.raise_for_failure()
        return found

    return search


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Finish the experiment inside the call phase, so a failed recovery fails the test."""
    try:
        result = yield
    except BaseException as err:
        exp = item.stash.get(EXPERIMENT_KEY, None)
        if exp is not None and exp.record is None:
            exp.finish(test_id=item.nodeid, error=err)
        raise
    exp = item.stash.get(EXPERIMENT_KEY, None)
    if exp is not None:
        exp.finish(test_id=item.nodeid)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Hand the final record to the reporters while the test's reports are still open."""
    try:
        return (yield)
    finally:
        exp = item.stash.get(EXPERIMENT_KEY, None)
        if exp is not None and exp.record is not None:
            item.config.hook.pytest_chaos_experiment_recorded(item=item, record=exp.record)


class XdistController:
    """pytest-xdist hooks, registered on the controller only when xdist is installed."""

    def __init__(self, chaos: ChaosSession, merge: WorkerMerge) -> None:
        self._chaos = chaos
        self._merge = merge

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Every worker gets the run's id and seed: one journal, one seed to replay it."""
        node.workerinput[KEY] = worker_input(self._chaos.run_id, self._chaos.settings.seed)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._merge.collected(ids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        output = getattr(node, "workeroutput", None)
        self._merge.node_down(node.workerinput["workerid"], output, error)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    chaos = config.stash[SESSION_KEY]
    if chaos.role is not None:  # an xdist worker: its records go home, the controller reports
        try:
            chaos.close()
        finally:
            facts = chaos.environment_facts
            config.workeroutput[KEY] = worker_output(chaos.role.worker_id, chaos.records, facts)
        return
    merge = config.stash.get(MERGE_KEY, None)
    try:
        if merge is not None:  # the xdist controller: every worker is down by now
            chaos.merge(merge.records(), merge.environment())
    finally:
        chaos.close()
    config.hook.pytest_chaos_session_reports(config=config, session=chaos)


class DefaultReporters:
    """Our own implementations of the chaos hooks: Allure decoration, session files, HTML."""

    def __init__(self, config: pytest.Config) -> None:
        self._alluredir = config.getoption("allure_report_dir", None)
        self._controller = not hasattr(config, "workerinput")  # xdist workers send records home

    @pytest.hookimpl(trylast=True)
    def pytest_chaos_experiment_recorded(self, item: pytest.Item, record: ExperimentRecord) -> None:
        listener = item.config.pluginmanager.get_plugin("allure_listener")
        if listener is not None:
            from chaos.report.allure import decorate_current_test

            decorate_current_test(listener.allure_logger, record.to_json())

    @pytest.hookimpl(trylast=True)
    def pytest_chaos_session_reports(self, config: pytest.Config, session: ChaosSession) -> None:
        from chaos.report.session import write_session_reports

        alluredir = Path(self._alluredir) if self._alluredir and self._controller else None
        config.stash[REPORT_LINES_KEY] = write_session_reports(session, alluredir)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    chaos = terminalreporter.config.stash[SESSION_KEY]
    merge = terminalreporter.config.stash.get(MERGE_KEY, None)
    merge_lines = [] if merge is None else merge.lines()  # also: workers that sent nothing
    if not chaos.records and not merge_lines:
        return
    terminalreporter.write_sep("=", "chaos: failure modes and customer impact")
    terminalreporter.write_line(summary(chaos.records))
    for line in coverage_lines(chaos.coverage()):
        terminalreporter.write_line(line)
    if chaos.journal_path is not None:
        terminalreporter.write_line(f"journal: {chaos.journal_path}")
    for line in merge_lines:
        terminalreporter.write_line(line)
    for line in terminalreporter.config.stash.get(REPORT_LINES_KEY, []):
        terminalreporter.write_line(line)
