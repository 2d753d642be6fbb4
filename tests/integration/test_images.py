"""chaos.images on the real Docker Engine and the real debootstrap: cached builds, a running proxy.

The images are kept (they are the cache); every container a test starts is labelled
io.pytest-chaos.test=1 and removed by id.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.errors import EnvironmentFailure
from chaos.images import IMAGE_LABEL, PROXY_PORT, BuildReport, ImageBuilder, image_tags, main

TEST_LABEL = "io.pytest-chaos.test=1"
START_TIMEOUT = 15.0


def docker(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def built() -> BuildReport:
    """The first ensure of the session: builds from nothing (~1 min) unless CI setup did."""
    return ImageBuilder(quiet=True).ensure()


@contextlib.contextmanager
def running(image: str, *args: str) -> Iterator[str]:
    container = docker("run", "--rm", "-d", "--label", TEST_LABEL, *args, image)
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


def get_when_up(url: str) -> tuple[int, bytes]:
    """GET `url`, retrying while the container starts (bounded by START_TIMEOUT)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.docker
def test_second_ensure_builds_nothing_and_is_fast(built: BuildReport) -> None:
    again = ImageBuilder(quiet=True).ensure()
    assert again.built == ()
    assert again.images == built.images == image_tags()
    assert again.seconds < 5.0


@pytest.mark.docker
def test_images_carry_their_kind_and_origin_labels(built: BuildReport) -> None:
    base = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", built.images.base))
    assert base["Labels"][IMAGE_LABEL] == "base"
    assert base["Labels"]["io.pytest-chaos.packages"] == "python3"
    assert base["Cmd"] == ["python3"]
    proxy = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", built.images.proxy)
    )
    assert proxy["Labels"][IMAGE_LABEL] == "proxy"
    assert proxy["Labels"]["io.pytest-chaos.base"] == built.images.base


@pytest.mark.docker
def test_base_image_has_python3_and_no_apt_lists(built: BuildReport) -> None:
    script = "import os, sys; print(sys.version_info[0], len(os.listdir('/var/lib/apt/lists')))"
    out = docker("run", "--rm", "--label", TEST_LABEL, built.images.base, "python3", "-c", script)
    major, lists = out.split()
    assert major == "3"
    assert int(lists) <= 2  # only `lock` and `partial/` are left


@pytest.mark.docker
def test_proxy_image_serves_the_admin_api_on_a_loopback_port(built: BuildReport) -> None:
    with running(built.images.proxy, "-p", f"127.0.0.1::{PROXY_PORT}") as container:
        published = docker("port", container, f"{PROXY_PORT}/tcp").splitlines()[0]
        host, port = published.rsplit(":", 1)
        assert host == "127.0.0.1"
        status, body = get_when_up(f"http://127.0.0.1:{port}/version")
        assert status == 200
        assert b"pytest-chaos" in body
        status, body = get_when_up(f"http://127.0.0.1:{port}/proxies")
        assert (status, json.loads(body)) == (200, {})


@pytest.mark.docker
def test_list_shows_the_images_as_current(
    built: BuildReport, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for tag in (built.images.base, built.images.proxy):
        line = next(line for line in lines if line.startswith(tag + " "))
        assert " current " in line


@pytest.mark.docker
def test_build_command_prints_the_tags_quietly(
    built: BuildReport, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == ["base", built.images.base, "proxy", built.images.proxy]
    assert captured.err == ""


def test_missing_debootstrap_is_a_clear_error(tmp_path: Path) -> None:
    builder = ImageBuilder(debootstrap=tmp_path / "no-debootstrap", work_root=tmp_path, quiet=True)
    with pytest.raises(EnvironmentFailure, match="apt-get install debootstrap") as info:
        builder.build_base(["python3-redis"])
    assert str(tmp_path / "no-debootstrap") in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_unreachable_daemon_is_a_clear_error(tmp_path: Path) -> None:
    builder = ImageBuilder(docker_host=f"unix://{tmp_path}/docker.sock", quiet=True)
    with pytest.raises(EnvironmentFailure, match="unreachable") as info:
        builder.ensure()
    assert f"{tmp_path}/docker.sock" in str(info.value)


def test_host_without_a_debian_mirror_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "apt").mkdir()
    (tmp_path / "os-release").write_text("VERSION_CODENAME=bookworm\n")
    (tmp_path / "apt" / "sources.list").write_text("deb https://vendor.example/apt stable main\n")
    builder = ImageBuilder(etc=tmp_path, work_root=tmp_path, quiet=True)
    with pytest.raises(
        EnvironmentFailure, match=r"no apt source .* serves suite 'bookworm'"
    ) as info:
        builder.build_base()
    assert f"{tmp_path / 'apt' / 'sources.list'}:1: https://vendor.example/apt" in str(info.value)


def test_build_command_refuses_a_bad_package_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--quiet", "--packages", "python3-redis,Bad Name"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chaos images build: error: package 'Bad Name'")


class NotFoundMirror(http.server.BaseHTTPRequestHandler):
    """A 'mirror' on 127.0.0.1 that has nothing: debootstrap fails on its first download."""

    paths: list[str] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_error(404)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap runs as root only")
def test_failing_debootstrap_shows_its_output_and_leaves_no_work_dir(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFoundMirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    etc, work = tmp_path / "etc", tmp_path / "work"
    (etc / "apt").mkdir(parents=True)
    work.mkdir()
    (etc / "os-release").write_text("VERSION_CODENAME=bookworm\n")
    mirror = f"http://127.0.0.1:{server.server_address[1]}/debian"
    (etc / "apt" / "sources.list").write_text(f"deb {mirror} bookworm main\n")
    builder = ImageBuilder(etc=etc, work_root=work, quiet=True, debootstrap_timeout=60)
    try:
        with pytest.raises(EnvironmentFailure) as info:
            builder.build_base()
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert f"debootstrap of bookworm from {mirror}" in message
    assert "failed (exit" in message
    assert "release file" in message.lower()  # debootstrap's own words, from its output
    assert "debootstrap.log" in message and "404" in message  # and the tail of its log
    assert any(path.startswith("/debian/dists/bookworm/") for path in NotFoundMirror.paths)
    assert list(work.iterdir()) == []
