"""DockerEventLog without Docker: a scripted client stands in for the daemon's event stream."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import docker.errors
import pytest

from chaos.environments import compose_events
from chaos.environments.compose_events import DockerEventLog
from chaos.environments.restart_policy import EventKind
from chaos.errors import EnvironmentFailure
from faults.container import SERVICE_LABEL

T0 = 1_700_000_000_000_000_000  # timeNano of the first event


def event(action: str, offset_ms: int, service: str = "back") -> dict[str, Any]:
    actor = {"ID": "c1", "Attributes": {SERVICE_LABEL: service, "exitCode": "137"}}
    return {"Action": action, "timeNano": T0 + offset_ms * 1_000_000, "Actor": actor}


class Stream:
    """Blocks like a live stream until close(); `broken` ends it with an error instead."""

    def __init__(self, *events: Mapping[str, Any], broken: bool = False) -> None:
        self.queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        for item in events:
            self.queue.put(item)
        if broken:
            self.queue.put({"broken": True})
        self.closed = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Mapping[str, Any]:
        item = self.queue.get(timeout=10)
        if item is None:
            raise StopIteration
        if "broken" in item:
            raise docker.errors.APIError("connection reset")
        return item

    def close(self) -> None:
        self.closed = True
        self.queue.put(None)


class Client:
    """Hands out the scripted live streams in order; `until` queries read `log`."""

    def __init__(self, *streams: Stream, log: tuple[Mapping[str, Any], ...] = ()) -> None:
        self.streams = list(streams)
        self.log = log
        self.calls: list[dict[str, Any]] = []

    def events(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if kwargs.get("until") is not None:
            since = int(kwargs["since"].replace(".", ""))
            return iter([e for e in self.log if e["timeNano"] >= since])
        if not self.streams:
            raise docker.errors.DockerException("daemon gone")
        return self.streams.pop(0)


def started(client: Client) -> DockerEventLog:
    log = DockerEventLog(client, project="chaos-t1", run_id="T1")  # type: ignore[arg-type]
    log.start(T0 / 1e9 - 1.0)
    return log


def wait_for(check: Any) -> None:
    deadline = time.monotonic() + 5
    while not check() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert check()


def test_it_subscribes_filtered_collects_and_stops_without_a_thread_left() -> None:
    live = Stream(event("kill", 0), event("die", 1), event("start", 2))
    client = Client(live)
    log = started(client)
    [call] = client.calls
    assert call["filters"]["label"] == [
        "io.pytest-chaos.run=T1",
        "com.docker.compose.project=chaos-t1",
    ]
    assert "exec_start" not in call["filters"]["event"] and "die" in call["filters"]["event"]
    wait_for(lambda: len(log._raw) == 3)
    began = time.monotonic()
    log.stop()
    assert time.monotonic() - began < 1.0 and live.closed and not log.running
    assert [(e.kind, e.requested) for e in log.events()] == [
        (EventKind.EXITED, True),
        (EventKind.RESTARTED, False),
    ], "the same conversion as before: a die after a kill was requested"
    log.stop()  # idempotent


def test_a_broken_stream_resumes_from_the_last_event_without_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compose_events, "RECONNECT_DELAY", 0.01)
    again = Stream(event("die", 1), event("start", 2))  # Docker replays from `since`, inclusive
    log = started(Client(Stream(event("die", 1), broken=True), again))
    wait_for(lambda: len(log._raw) == 2)
    assert log.client.calls[1]["since"] == f"{T0 // 10**9}.{T0 % 10**9 + 1_000_000:09d}"  # type: ignore[attr-defined]
    log.stop()
    assert [e.kind for e in log.events()] == [EventKind.EXITED, EventKind.RESTARTED]
    assert isinstance(log.error, docker.errors.APIError)


def test_events_catch_up_with_what_is_still_in_transit() -> None:
    live = Stream(event("die", 1))
    log = started(Client(live, log=(event("die", 1), event("start", 2))))
    wait_for(lambda: len(log._raw) == 1)
    assert [e.kind for e in log.events()] == [EventKind.EXITED, EventKind.RESTARTED]
    live.queue.put(event("start", 2))  # arrives late on the stream: already known
    time.sleep(0.05)
    log.stop()
    assert len(log.events()) == 2


def test_a_failed_subscription_fails_start_and_starts_no_thread() -> None:
    before = threading.active_count()
    log = DockerEventLog(Client(), project="chaos-t1", run_id="T1")  # type: ignore[arg-type]
    with pytest.raises(EnvironmentFailure, match="cannot subscribe to Docker events"):
        log.start(0.0)
    log.stop()
    assert threading.active_count() == before and log.events() == []
