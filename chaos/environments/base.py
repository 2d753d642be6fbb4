"""The interface every environment (local processes, Docker Compose) offers to faults and experiments."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from chaos.errors import CatalogError

if TYPE_CHECKING:
    from chaos.catalog import Catalog, Edge
    from faults.base import Recipe
    from faults.proxy.client import ToxiproxyClient


class ServiceLifecycle(Protocol):
    """Start/stop/crash services. Local: the process supervisor. Compose: containers by label."""

    def crash(self, service: str) -> None:
        """SIGKILL the service's main process: a crash, so its restart policy applies."""
        ...

    def stop(self, service: str) -> None:
        """Orderly stop (SIGTERM, then SIGKILL after a grace period); restart policy does not apply."""
        ...

    def start(self, service: str) -> None:
        """Start a stopped service (no-op when running)."""
        ...

    def pause(self, service: str) -> None:
        """Freeze the service (SIGSTOP / docker pause)."""
        ...

    def resume(self, service: str) -> None:
        """Unfreeze a paused service (no-op when not paused)."""
        ...

    def restart(self, service: str) -> None:
        """Orderly stop then start."""
        ...

    def is_running(self, service: str) -> bool: ...

    def revert_recipe(self, action: str, service: str) -> Recipe:
        """A Recipe a fresh process can run to undo `action` ("pause", "stop", …) on `service`."""
        ...


class Environment(Protocol):
    """A running system under test, described by a catalog."""

    kind: str  # "local" | "compose"
    catalog: Catalog
    run_id: str
    lifecycle: ServiceLifecycle

    def start(self) -> None:
        """Bring every service up and wire every catalog edge through a proxy; wait until healthy."""
        ...

    def stop(self) -> None:
        """Tear everything down; leave nothing behind."""
        ...

    def endpoint(self, service: str) -> str:
        """Base URL a customer on this host uses to reach `service`, e.g. 'http://127.0.0.11:8000'."""
        ...

    def proxy(self) -> ToxiproxyClient:
        """Admin client of the proxy that carries the catalog's edges."""
        ...

    def proxy_name(self, edge: Edge) -> str:
        """Name of the proxy carrying `edge` on that admin API."""
        ...

    def healthy(self, service: str) -> bool:
        """Whether the service answers its health check now."""
        ...

    def reconcile(self) -> list[str]:
        """Return to the declared state (services up, no toxics, proxies enabled); list the repairs made."""
        ...

    def describe(self) -> dict[str, str]:
        """Facts for reports: kind, project, proxy kind and version…"""
        ...


def declared_file(catalog: Catalog, kind: str) -> Path:
    """The catalog's `environments.<kind>` file, or a CatalogError saying how to declare it."""
    path = catalog.environments.get(kind)
    if path is None:
        raise CatalogError(
            f"no {kind} environment declared; add `environments: {{{kind}: {kind}.yaml}}`",
            file=catalog.path,
            field=f"environments.{kind}",
        )
    return path


class StartStopContext:
    """`with env:` starts the environment and always stops it, for every environment kind."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> StartStopContext:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
