"""The HTML report of two real runs, rendered in headless Chromium over the DevTools pipe.

Chromium comes from Debian (`apt-get install chromium`); the DevTools protocol runs over
--remote-debugging-pipe (fds 3 and 4), so the browser opens no port at all.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_allure_report import run_outcomes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (Debian package `chromium`, see .ci/setup)"
)
WIDTH = 1400


def _high(fd: int) -> int:
    """Move a descriptor to 10 or above (close-on-exec), away from the fds 3 and 4 we wire."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class DevTools:
    """A headless Chromium driven by CDP messages (NUL-terminated JSON) over two pipes."""

    def __init__(self, profile: Path) -> None:
        cmd_r, self._cmd_w = (_high(fd) for fd in os.pipe())
        self._resp_r, resp_w = (_high(fd) for fd in os.pipe())

        def wire_fds() -> None:  # the browser reads commands on fd 3 and answers on fd 4
            os.dup2(cmd_r, 3)  # the sources are >= 10, so neither dup2 clobbers the other
            os.dup2(resp_w, 4)

        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},900",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),  # kept open across exec once wire_fds has put the pipes there
            preexec_fn=wire_fds,
        )
        os.close(cmd_r)
        os.close(resp_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, timeout: float = 20, **params: Any):
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        reply = self._until(lambda m: m.get("id") == self._next_id, timeout)
        assert "error" not in reply, (method, reply["error"])
        return reply["result"]

    def wait_event(self, method: str, timeout: float = 20) -> dict[str, Any]:
        seen = next((e for e in self.events if e["method"] == method), None)
        return seen or self._until(lambda m: m.get("method") == method, timeout)

    def _until(self, wanted, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:  # bounded by the timeout
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if ready:
                chunk = os.read(self._resp_r, 1 << 20)
                assert chunk, "Chromium closed the DevTools pipe"
                self._buffer += chunk
        raise TimeoutError(f"no DevTools answer within {timeout}s")

    def close(self) -> None:
        try:
            os.write(self._cmd_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self._cmd_w)
            os.close(self._resp_r)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of the outcomes suite into one results directory: the second compares."""
    workdir = tmp_path_factory.mktemp("html-run")
    for _ in range(2):
        run = run_outcomes(workdir)
        assert run.returncode == 1, run.stdout + run.stderr
    assert "html report: " in run.stdout
    assert len(list((workdir / "results" / "journals").glob("*.json"))) == 2
    return workdir / "results" / "report.html"


CELLS_JS = """JSON.stringify({
  cells: [...document.querySelectorAll('td.cell')].map(td => ({
    service: td.dataset.service, kind: td.dataset.kind, outcome: td.dataset.outcome || null,
    text: td.innerText, href: td.querySelector('a') ? td.querySelector('a').getAttribute('href') : null,
    target: td.querySelector('a') ? !!document.querySelector(
      td.querySelector('a').getAttribute('href') + ' img') : null})),
  images: [...document.images].map(i => i.complete && i.naturalWidth),
  sections: [...document.querySelectorAll('h2')].map(h => h.innerText),
  height: document.documentElement.scrollHeight})"""


@pytest.fixture(scope="module")
def page(report: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    browser = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call("Page.navigate", session, url=report.as_uri())
        browser.wait_event("Page.loadEventFired")
        found = json.loads(
            browser.call("Runtime.evaluate", session, expression=CELLS_JS, returnByValue=True)[
                "result"
            ]["value"]
        )
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=WIDTH,
            height=found["height"],
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = browser.call("Page.captureScreenshot", session, format="png")["data"]
        screenshot = report.with_name("report.png")
        screenshot.write_bytes(base64.b64decode(shot))
        yield {
            **found,
            "events": list(browser.events),
            "screenshot": screenshot,
            "url": report.as_uri(),
        }
    finally:
        browser.close()


def test_page_has_no_console_errors_and_loads_nothing_from_the_network(page) -> None:
    problems = [
        e
        for e in page["events"]
        if e["method"] == "Runtime.exceptionThrown"
        or (
            e["method"] == "Runtime.consoleAPICalled"
            and e["params"]["type"] in ("error", "warning", "assert")
        )
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert problems == []
    requests = [
        e["params"]["request"]["url"]
        for e in page["events"]
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests[0] == page["url"]
    assert all(url.startswith(("file://", "data:")) for url in requests), requests


def test_matrix_cells_show_outcome_error_rate_ttr_and_link_to_their_plot(page) -> None:
    cells = {(c["service"], c["kind"]): c for c in page["cells"]}
    assert set(cells) == {("svc", "scripted"), ("svc", "sticky"), ("svc", "stop")}
    scripted = cells[("svc", "scripted")]
    assert scripted["outcome"] == "degraded"  # worst of tolerated, degraded, degraded
    assert (
        "errors" in scripted["text"]
        and "TTR" in scripted["text"]
        and "3 experiments" in scripted["text"]
    )
    sticky = cells[("svc", "sticky")]
    assert sticky["outcome"] == "not-recovered" and "TTR never" in sticky["text"]
    for cell in (scripted, sticky):
        assert cell["href"].startswith("#exp-") and cell["target"] is True
    gap = cells[("svc", "stop")]  # required by the catalog for tier 1, never exercised
    assert gap["outcome"] == "missing" and "required, missing: svc" in gap["text"]


def test_plots_are_embedded_and_decode(page) -> None:
    assert len(page["images"]) == 5  # one timeline per experiment
    assert all(width and width >= 800 for width in page["images"]), page["images"]


def test_sections_include_journeys_and_the_previous_run(page) -> None:
    sections = page["sections"]
    assert sections[0] == "Failure-mode matrix"
    assert "Customer impact per journey" in sections
    assert any(s.startswith("Compared with the previous run (") for s in sections)


def test_screenshot_is_a_full_page_png(page) -> None:
    png = page["screenshot"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == WIDTH and height >= 1500
