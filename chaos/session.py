"""Per-run state shared by all experiments: settings, ledger, catalog, the environment, the journal.

Works without pytest (the plugin keeps one in config.stash); the environment starts lazily on the
first experiment and stops once at the end of the run. Under pytest-xdist every worker has one
(its `role` says which) and the controller's merges their records into the run's one journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.catalog import Catalog, load_catalog
from chaos.coverage import Coverage, FailureMode, coverage, required_modes
from chaos.errors import ConfigError, EnvironmentFailure
from chaos.experiment import Experiment, ExperimentListener, ExperimentSettings
from chaos.ledger import Ledger
from chaos.parallel import WorkerRole, check_parallel_safe
from chaos.record import ExperimentRecord
from chaos.report.journal import Journal
from chaos.settings import ChaosSettings
from faults.registry import EDGE_KINDS, FAULT_KINDS
from reconcilers.sweeper import SweepReport, sweep

if TYPE_CHECKING:
    from chaos.environments.base import Environment


class ChaosSession:
    """Everything one run of experiments shares."""

    def __init__(self, settings: ChaosSettings, role: WorkerRole | None = None) -> None:
        self.role = role  # None: a serial run, or the controller of an xdist run
        self.settings = settings if role is None else replace(settings, seed=role.seed)
        self.ledger = Ledger(settings.state_dir, None if role is None else role.own_run_id)
        self.run_id = self.ledger.run_id
        self.records: list[ExperimentRecord] = []
        self.sweep_report: SweepReport | None = None
        self.journal_path: Path | None = None
        self._catalog: Catalog | None = None
        self._env: Environment | None = None
        self._env_error: BaseException | None = None
        self._env_facts: dict[str, str] = {"kind": settings.env}

    def start(self) -> None:
        """Sweep what dead runs left behind, then open this run's ledger.

        xdist workers do not sweep: the controller did before it started them.
        """
        if self.role is None:
            self.sweep_report = sweep(self.settings.state_dir)
        self.ledger.open()

    def catalog(self) -> Catalog:
        if self._catalog is None:
            if self.settings.catalog is None:
                raise ConfigError(
                    "no catalog: pass --chaos-catalog path/to/chaos.yaml "
                    "(or set CHAOS_CATALOG, or chaos_catalog in the ini file)"
                )
            self._catalog = load_catalog(self.settings.catalog, fault_kinds=FAULT_KINDS)
        return self._catalog

    def environment(self) -> Environment:
        """The running environment, started on first use; a failed start is re-raised quickly."""
        if self._env_error is not None:
            raise EnvironmentFailure(f"the environment failed to start earlier: {self._env_error}")
        if self._env is None:
            try:
                env = self._build_environment(self.catalog())
                env.start()
            except BaseException as err:
                self._env_error = err
                raise
            self._env = env
            self._env_facts = env.describe()
        return self._env

    def _build_environment(self, catalog: Catalog) -> Environment:
        if self.settings.env == "local":
            from chaos.environments.local import LocalEnvironment

            local = LocalEnvironment.from_catalog(
                catalog,
                run_id=self.run_id,
                state_dir=self.settings.state_dir / "runs" / self.run_id,
                tracker=self.ledger,
                proxy_url=self.settings.proxy_url,
            )
            fixed = [f"{name} port {s.port}" for name, s in local.spec.services.items() if s.port]
            fix = f"set `port: 0` for them in {local.spec.path} (each copy then gets free ports)"
            check_parallel_safe("local", fixed, fix, self.role)
            return local
        if self.settings.env == "compose":
            from chaos.environments.compose import ComposeEnvironment
            from chaos.environments.compose_config import fixed_host_bindings

            compose = ComposeEnvironment.from_catalog(
                catalog,
                run_id=self.run_id,  # under xdist it ends in the worker id: one project each
                state_dir=self.settings.state_dir / "runs" / self.run_id,
                tracker=self.ledger,
                proxy_url=self.settings.proxy_url,
            )
            fix = (
                f"remove them from {compose.compose_file} (every catalog port is published anyway)"
            )
            check_parallel_safe("compose", fixed_host_bindings(compose.config), fix, self.role)
            return compose
        raise ConfigError(f"--chaos-env {self.settings.env}: unknown environment kind")

    def experiment(
        self,
        name: str,
        overrides: Mapping[str, Any],
        listener: ExperimentListener | None = None,
    ) -> Experiment:
        """A new experiment on a reconciled environment (the repairs made are recorded)."""
        env = self.environment()
        repairs = env.reconcile()
        settings = ExperimentSettings(
            rto=overrides.get("rto"),
            baseline=overrides.get("baseline", self.settings.baseline),
            seed=self.settings.seed,
        )
        return Experiment(
            env, self.ledger, name=name, settings=settings, listener=listener, repairs=repairs
        )

    def add(self, record: ExperimentRecord) -> None:
        self.records.append(record)

    @property
    def environment_facts(self) -> dict[str, str]:
        """What the journal says about the environment (its describe(), once started)."""
        return dict(self._env_facts)

    def merge(self, records: Iterable[ExperimentRecord], environment: Mapping[str, str]) -> None:
        """Take the experiments xdist workers ran, as if this session had run them."""
        self.records.extend(records)
        if environment:
            self._env_facts = {**self._env_facts, **environment}
        if self.records and self.settings.catalog is not None:
            self.catalog()  # the workers loaded it to run them; coverage needs it here too

    def matrix(self, tier: int | None = None, kinds: list[str] | None = None) -> list[FailureMode]:
        """The failure modes the catalog requires (optionally of one tier / some kinds)."""
        if tier is not None and tier not in (1, 2, 3, 4):
            raise ConfigError(
                f"@pytest.mark.chaos_matrix(tier={tier!r}): tier must be 1, 2, 3 or 4"
            )
        unknown = sorted(set(kinds or ()) - set(FAULT_KINDS))
        if unknown:
            raise ConfigError(
                f"@pytest.mark.chaos_matrix(kinds=...): unknown fault kind(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(FAULT_KINDS))}"
            )
        return required_modes(self.catalog(), EDGE_KINDS, tier=tier, kinds=kinds)

    def coverage(self) -> Coverage | None:
        """Required failure modes against what this run's experiments injected."""
        if self._catalog is None:
            return None
        return coverage(required_modes(self._catalog, EDGE_KINDS), self.records)

    def close(self) -> None:
        """Stop the environment, write the journal, close the ledger (in that order)."""
        try:
            if self._env is not None:
                self._env.stop()
        finally:
            self._env = None
            if self.records and self.role is None:  # a worker's records go home to the controller
                self.journal_path = self._journal().write(self.settings.results)
            self.ledger.close()

    def _journal(self) -> Journal:
        return Journal(
            run_id=self.run_id,
            seed=self.settings.seed,
            catalog=None if self.settings.catalog is None else str(self.settings.catalog),
            environment=self._env_facts,
            experiments=list(self.records),
            coverage=self.coverage(),
        )
