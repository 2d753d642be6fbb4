"""Lifecycle events of a Compose project, collected live from Docker's event stream.

Docker keeps only its last 256 events, and every healthcheck adds three (exec_create, exec_start,
exec_die), so reading the log after an experiment finds its kills and restarts already overwritten.
A subscription opened before `up`, filtered by the daemon to our labels and to the lifecycle
actions (so healthcheck noise is never even sent), keeps every one of them for the whole run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import docker
import docker.errors
import requests

from chaos.environments.restart_policy import LifecycleEvent
from chaos.errors import EnvironmentFailure
from faults.container import LIFECYCLE_ACTIONS, docker_lifecycle_events, run_filter

RECONNECT_DELAY = 1.0  # seconds between attempts when the stream breaks before we stop it
JOIN_TIMEOUT = 5.0  # bound on waiting for the collector thread once its stream is closed
_UNREACHABLE = (docker.errors.DockerException, requests.RequestException)


class EventStream(Protocol):
    """What we use of docker's CancellableStream: decoded events, and close() from any thread."""

    def __iter__(self) -> EventStream: ...

    def __next__(self) -> Mapping[str, Any]: ...

    def close(self) -> None: ...


class DockerEventLog:
    """Collects a project's container lifecycle events in a daemon thread, from start to stop.

    Single use: `start()` subscribes (errors reach the caller), `stop()` closes the stream and joins
    the thread (bounded); `events()` works in any phase and returns what was collected so far.
    If the stream breaks while running, it resubscribes from the last event seen (Docker replays
    its buffer from there), skipping events already collected.
    """

    def __init__(self, client: docker.DockerClient, *, project: str, run_id: str) -> None:
        self.client = client
        self.project = project
        self.run_id = run_id
        self.since = 0.0
        self.error: BaseException | None = None  # the last failure of the stream, for diagnosis
        self._raw: list[Mapping[str, Any]] = []
        self._seen: set[tuple[int, str, str]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stream: EventStream | None = None
        self._thread: threading.Thread | None = None

    @property
    def filters(self) -> dict[str, Any]:
        return {
            "type": "container",
            "label": run_filter(self.run_id, self.project),
            "event": list(LIFECYCLE_ACTIONS),
        }

    def start(self, since: float) -> None:
        """Subscribe from wall time `since` (Docker replays what happened between) and collect."""
        if self._thread is not None or self._stopping.is_set():
            raise EnvironmentFailure(f"the event log of {self.project} was already started")
        self.since = since
        try:
            stream = self._subscribe(self._resume_from())
        except _UNREACHABLE as err:
            raise EnvironmentFailure(
                f"cannot subscribe to Docker events of compose project {self.project}: {err}"
            ) from err
        self._thread = threading.Thread(
            target=self._collect, args=(stream,), name=f"docker-events-{self.project}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the stream so the thread ends now, and wait for it (bounded); idempotent."""
        self._stopping.set()
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            _close(stream)
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def events(self) -> list[LifecycleEvent]:
        """Every lifecycle event since `since`, up to now while running, up to stop() after."""
        if self.running and not self._stopping.is_set():
            self._catch_up()
        with self._lock:
            raw = sorted(self._raw, key=lambda event: int(event.get("timeNano", 0)))
        return docker_lifecycle_events(raw, time.monotonic() - time.time())

    # internals

    def _subscribe(self, since: str) -> EventStream | None:
        """A new stream, registered so stop() can close it; None (and closed) once stopping."""
        stream: EventStream = self.client.events(since=since, decode=True, filters=self.filters)
        with self._lock:
            if not self._stopping.is_set():
                self._stream = stream
                return stream
        _close(stream)
        return None

    def _collect(self, stream: EventStream | None) -> None:
        while stream is not None:
            try:
                for raw in stream:
                    self._keep(raw)
            except Exception as err:  # a broken stream must not kill the thread: resubscribe
                self.error = err
            stream = self._resubscribe()

    def _resubscribe(self) -> EventStream | None:
        """After the stream ended: subscribe again from the last event kept; None once stopping."""
        while not self._stopping.wait(RECONNECT_DELAY):
            try:
                return self._subscribe(self._resume_from())
            except Exception as err:  # the daemon is away: try again until stopped
                self.error = err
        return None

    def _catch_up(self) -> None:
        """Read from Docker's log what happened since the last event kept but is still in transit.

        What was kept is every event up to its last one, so this short query stays well inside
        Docker's 256-event buffer, and `events()` is complete up to the moment it is called.
        """
        try:
            stream = self.client.events(
                since=self._resume_from(), until=time.time(), decode=True, filters=self.filters
            )
            for raw in stream:
                self._keep(raw)
        except _UNREACHABLE:
            pass  # the live stream still delivers them, a moment later

    def _keep(self, raw: Mapping[str, Any]) -> None:
        actor = raw.get("Actor") or {}
        key = (int(raw.get("timeNano", 0)), str(actor.get("ID", "")), str(raw.get("Action", "")))
        with self._lock:
            if key not in self._seen:
                self._seen.add(key)
                self._raw.append(raw)

    def _resume_from(self) -> str:
        """The exact time of the last event kept (inclusive: duplicates are skipped), else `since`."""
        with self._lock:
            last = int(self._raw[-1].get("timeNano", 0)) if self._raw else 0
        if not last:
            return f"{self.since:.9f}"
        return f"{last // 1_000_000_000}.{last % 1_000_000_000:09d}"


def _close(stream: EventStream) -> None:
    """Close a stream whose socket may already be gone (closed by the daemon, or by us)."""
    with contextlib.suppress(OSError, AttributeError, docker.errors.DockerException):
        stream.close()
