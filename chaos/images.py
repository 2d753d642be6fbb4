"""Build the container images pytest-chaos needs on a machine that can pull none (DESIGN §7)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import modulefinder
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos.aptsources import find_mirror, host_suite, read_sources
from chaos.build_commands import Command, Progress, debootstrap_echo
from chaos.errors import ChaosError, ConfigError, EnvironmentFailure

BUILDER_VERSION = "1"  # bump when the recipe below changes: every content-hash tag changes with it
BASE_REPO = "pytest-chaos/base"
PROXY_REPO = "pytest-chaos/proxy"
IMAGE_LABEL = "io.pytest-chaos.image"
PROXY_PORT = 8474
DEFAULT_DEBOOTSTRAP = Path("/usr/sbin/debootstrap")
DEFAULT_WORK_ROOT = Path("/var/tmp")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APP_DIR = "/opt/pytest-chaos"
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the tree holding chaos/ and faults/
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian policy §5.6.1


# -- tags and layers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSet:
    """The tags experiments run: `base` has the asked packages, `proxy` is the sidecar."""

    base: str
    proxy: str


def package_set(extra_packages: Sequence[str]) -> tuple[str, ...]:
    """python3 plus the extras, sorted and unique; each name checked against Debian policy."""
    for name in extra_packages:
        if not _PACKAGE_NAME.match(name):
            raise ConfigError(
                f"package {name!r} is not a Debian package name (lower-case letters, digits, "
                "'+', '-', '.'); pass names such as python3-redis,redis-server"
            )
    return tuple(sorted({"python3", *extra_packages}))


def _digest(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big") + data)
    return hasher.hexdigest()[:16]


def base_tag(suite: str, packages: Sequence[str]) -> str:
    """Content-hash tag of a base image: suite, package set, builder version (not the mirror)."""
    return f"{BASE_REPO}:{_digest(suite, ','.join(package_set(packages)), BUILDER_VERSION)}"


@dataclass(frozen=True)
class Layer:
    """A small image on top of a base: files copied under APP_DIR plus Dockerfile instructions."""

    repo: str
    kind: str
    files: tuple[tuple[str, Path], ...]  # (path under APP_DIR, source file)
    instructions: tuple[str, ...] = ()

    def dockerfile(self, base: str) -> str:
        lines = [  # few instructions: each one is a layer commit, seconds on fuse-overlayfs
            f"FROM {base}",
            f"COPY app/ {APP_DIR}/",
            f"ENV PYTHONPATH={APP_DIR} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
            f"LABEL {IMAGE_LABEL}={self.kind} io.pytest-chaos.base={base}",
            *self.instructions,
        ]
        return "\n".join(lines) + "\n"

    def tag(self, base: str) -> str:
        """Hash of the base tag, the Dockerfile and every copied file's path and content."""
        parts: list[str | bytes] = [base, self.dockerfile(base)]
        for dest, source in self.files:
            parts += [dest, source.read_bytes()]
        return f"{self.repo}:{_digest(*parts)}"


def module_closure(script: Path, root: Path) -> tuple[tuple[str, Path], ...]:
    """The files under `root` that running `script` imports (plus the script), as (rel, path)."""
    finder = modulefinder.ModuleFinder(path=[str(root)])
    finder.run_script(str(script))
    files = {script.resolve()}
    for module in finder.modules.values():
        if module.__file__ and Path(module.__file__).resolve().is_relative_to(root):
            files.add(Path(module.__file__).resolve())
    return tuple(sorted((str(f.relative_to(root)), f) for f in files))


def proxy_layer(root: Path = SOURCE_ROOT) -> Layer:
    """The proxy sidecar: exactly what `python3 -m faults.proxy` imports from our packages."""
    return Layer(
        repo=PROXY_REPO,
        kind="proxy",
        files=module_closure(root / "faults" / "proxy" / "__main__.py", root),
        instructions=(
            f'CMD ["python3", "-m", "faults.proxy", "--listen", "0.0.0.0:{PROXY_PORT}"]',
        ),
    )


# -- the builder ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildReport:
    """What `ensure` returns: the tags, which of them it had to build, and how long it took."""

    images: ImageSet
    built: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class ImageInfo:
    """One of our images as `chaos images list` shows it; `current` is None for unknown kinds."""

    tag: str
    kind: str
    size_mb: float
    created: str
    current: bool | None


@dataclass
class ImageBuilder:
    """Builds base and layer images once each, keyed by content hash, under a host-wide lock."""

    debootstrap: Path = DEFAULT_DEBOOTSTRAP
    etc: Path = Path("/etc")
    work_root: Path = DEFAULT_WORK_ROOT
    source_root: Path = SOURCE_ROOT
    docker_host: str | None = None
    quiet: bool = False
    debootstrap_timeout: float = 1800.0
    docker_timeout: float = 600.0
    progress: Progress = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress(quiet=self.quiet)
        self.env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        if self.docker_host is not None:
            self.env["DOCKER_HOST"] = self.docker_host

    def tags(self, extra_packages: Sequence[str] = ()) -> ImageSet:
        """The tags `ensure` would produce, without touching Docker."""
        suite = host_suite(self.etc)
        minimal = base_tag(suite, ())
        return ImageSet(base_tag(suite, extra_packages), proxy_layer(self.source_root).tag(minimal))

    def ensure(self, extra_packages: Sequence[str] = ()) -> BuildReport:
        """Build whatever of (minimal base, base with extras, proxy) is missing; return the tags."""
        began = time.monotonic()
        packages = package_set(extra_packages)
        self.check_daemon()
        suite = host_suite(self.etc)
        layer = proxy_layer(self.source_root)
        built: list[str] = []
        with self._lock():
            minimal = self._ensure_base(suite, package_set(()), built)
            base = (
                self._ensure_base(suite, packages, built) if packages != ("python3",) else minimal
            )
            proxy = self.ensure_layer(layer, minimal, built)
        seconds = time.monotonic() - began
        self.progress.say(f"images ready in {seconds:.1f}s ({len(built)} built)")
        return BuildReport(ImageSet(base, proxy), tuple(built), seconds)

    def check_daemon(self) -> None:
        """Fail early, saying what to do, when the docker CLI or its daemon is not there."""
        where = self.env.get("DOCKER_HOST", "the default socket")
        try:
            result = self._docker("version", "--format", "{{.Server.Version}}", timeout=30)
        except subprocess.TimeoutExpired:
            raise EnvironmentFailure(
                f"the Docker daemon at {where} did not answer within 30s; check that dockerd runs"
            ) from None
        if result.returncode != 0:
            raise EnvironmentFailure(
                f"the Docker daemon at {where} is unreachable: {result.stderr.strip()}; "
                "start it (e.g. `systemctl start docker`) or set DOCKER_HOST"
            )

    def exists(self, tag: str) -> bool:
        return self._docker("image", "inspect", "--format", "{{.Id}}", tag).returncode == 0

    def build_base(self, extra_packages: Sequence[str] = (), *, suite: str | None = None) -> str:
        """debootstrap a minbase root filesystem with the packages and `docker import` it."""
        self._check_debootstrap()
        packages = package_set(extra_packages)
        suite = suite or host_suite(self.etc)
        mirror = find_mirror(read_sources(self.etc), suite, where=str(self.etc / "apt"))
        tag = base_tag(suite, packages)
        signed_by = Path(mirror.signed_by) if mirror.signed_by else None
        keyring = (f"--keyring={signed_by}",) if signed_by and signed_by.is_file() else ()
        with self._workdir("base") as work:
            rootfs = work / "rootfs"
            debootstrap = Command(
                (str(self.debootstrap), "--variant=minbase", "--components=main",
                 f"--include={','.join(packages)}", *keyring, suite, str(rootfs), mirror.uri),
                what=f"debootstrap of {suite} from {mirror.uri} ({mirror.origin})",
                timeout=self.debootstrap_timeout, echo=debootstrap_echo(),
                log=rootfs / "debootstrap" / "debootstrap.log",
            )  # fmt: skip
            with self.progress.step(
                f"debootstrap {suite} + {' '.join(packages)} from {mirror.uri}"
            ):
                debootstrap.run(self.progress, self.env)
            _clean_rootfs(rootfs)
            with self.progress.step(f"docker import {tag}"):
                self._import(rootfs, tag, suite, packages)
        return tag

    def ensure_layer(self, layer: Layer, base: str, built: list[str] | None = None) -> str:
        """`docker build` the layer on `base` unless its content-hash tag exists already."""
        tag = layer.tag(base)
        if self.exists(tag):
            self.progress.say(f"{tag} present")
            return tag
        with self._workdir(layer.kind) as context:
            (context / "Dockerfile").write_text(layer.dockerfile(base))
            for dest, source in layer.files:
                target = context / "app" / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            build = Command(
                ("docker", "build", "--tag", tag, str(context)), what=f"docker build of {tag}",
                timeout=self.docker_timeout, echo=lambda line: line.startswith("Step "),
            )  # fmt: skip
            with self.progress.step(f"docker build {tag} on {base}"):
                build.run(self.progress, self.env)
        if built is not None:
            built.append(tag)
        return tag

    def list_images(self) -> list[ImageInfo]:
        """Every image labelled as ours, and whether its tag is the one this checkout would build."""
        self.check_daemon()
        listed = self._docker("image", "ls", "-q", "--no-trunc", "--filter", f"label={IMAGE_LABEL}")
        ids = sorted(set(listed.stdout.split()))
        inspected = self._docker("image", "inspect", *ids) if ids else None
        if inspected is not None and inspected.returncode != 0:
            raise EnvironmentFailure(f"docker image inspect failed: {inspected.stderr.strip()}")
        found = []
        for image in json.loads(inspected.stdout) if inspected else ():
            labels = image.get("Config", {}).get("Labels") or {}
            for tag in image.get("RepoTags") or ():
                size, created = image.get("Size", 0) / 1e6, image.get("Created", "")[:19]
                kind, current = labels.get(IMAGE_LABEL, "?"), self._is_current(tag, labels)
                found.append(ImageInfo(tag, kind, size, created, current))
        return sorted(found, key=lambda info: (info.kind, info.tag))

    def _is_current(self, tag: str, labels: Mapping[str, str]) -> bool | None:
        kind = labels.get(IMAGE_LABEL)
        suite = host_suite(self.etc)
        if kind == "base":
            packages = [p for p in labels.get("io.pytest-chaos.packages", "").split(",") if p]
            return tag == base_tag(suite, packages)
        if kind == "proxy":
            base = labels.get("io.pytest-chaos.base", "")
            return base == base_tag(suite, ()) and tag == proxy_layer(self.source_root).tag(base)
        return None

    def _ensure_base(self, suite: str, packages: tuple[str, ...], built: list[str]) -> str:
        tag = base_tag(suite, packages)
        if self.exists(tag):
            self.progress.say(f"{tag} present ({' '.join(packages)})")
            return tag
        self.build_base(packages, suite=suite)
        built.append(tag)
        return tag

    def _check_debootstrap(self) -> None:
        if not (self.debootstrap.is_file() and os.access(self.debootstrap, os.X_OK)):
            raise EnvironmentFailure(
                f"debootstrap not found at {self.debootstrap}: it builds the base image; "
                "install it with `apt-get install debootstrap` (or use images from a registry)"
            )
        if os.geteuid() != 0:
            raise EnvironmentFailure(
                "debootstrap needs root to build the base image: run `chaos images build` as root"
            )

    def _import(self, rootfs: Path, tag: str, suite: str, packages: Sequence[str]) -> None:
        """`tar -C rootfs -c . | docker import` with our ENV, CMD and labels."""
        label = (
            f"LABEL {IMAGE_LABEL}=base io.pytest-chaos.suite={suite} "
            f"io.pytest-chaos.packages={','.join(packages)} io.pytest-chaos.builder={BUILDER_VERSION}"
        )
        changes = (f"ENV PATH={IMAGE_PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]', label)
        args = [arg for change in changes for arg in ("--change", change)]
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        try:
            what = f"docker import of {tag}"
            Command(("docker", "import", *args, "-", tag), what, self.docker_timeout).run(
                self.progress, self.env, stdin=tar.stdout
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            try:
                tar.wait(60)
            except subprocess.TimeoutExpired:
                tar.kill()
                tar.wait(10)
        if tar.returncode != 0:
            raise EnvironmentFailure(f"tar of {rootfs} for {tag} failed (exit {tar.returncode})")

    def _docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["docker", *args], capture_output=True, text=True, timeout=timeout, env=self.env
            )
        except FileNotFoundError as err:
            raise EnvironmentFailure(
                "the docker CLI is not on PATH: install docker.io (or docker-ce-cli)"
            ) from err

    @contextlib.contextmanager
    def _workdir(self, kind: str) -> Iterator[Path]:
        """A temp dir under work_root, removed afterwards even if debootstrap left mounts in it."""
        path = Path(tempfile.mkdtemp(prefix=f"pytest-chaos-{kind}-", dir=self.work_root))
        try:
            yield path
        finally:
            _remove_tree(path)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One build per host at a time; a second caller waits, then finds the images built."""
        path = self.work_root / "pytest-chaos-images.lock"
        deadline = time.monotonic() + self.debootstrap_timeout + 2 * self.docker_timeout
        with path.open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EnvironmentFailure(f"{path} held too long by another build") from None
                    self.progress.say(f"waiting for another image build ({path}) ...")
                    time.sleep(5.0)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_rootfs(rootfs: Path) -> None:
    """Drop apt lists and caches: they are large and stale as soon as the image exists."""
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
        for path in rootfs.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()


def _mounts_under(path: Path) -> list[str]:
    """Mount points below `path` (debootstrap bind-mounts /dev, /proc, /sys into its target)."""
    prefix = str(path.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Unmount what is mounted below `path`, then remove it without crossing into other mounts."""
    for point in _mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    left = _mounts_under(path)
    if left:
        raise EnvironmentFailure(f"cannot unmount {', '.join(left)}; remove {path} by hand")
    removed = subprocess.run(
        ["rm", "-rf", "--one-file-system", str(path)], capture_output=True, text=True, timeout=300
    )
    if removed.returncode != 0:  # a warning: raising here would hide the build's own error
        print(f"chaos images: could not remove {path}: {removed.stderr.strip()}", file=sys.stderr)


# -- public entry points --------------------------------------------------------------------------


def ensure_images(extra_packages: Sequence[str] = (), *, quiet: bool = False) -> ImageSet:
    """Build the images missing for this package set (the slow path only the first time)."""
    return ImageBuilder(quiet=quiet).ensure(extra_packages).images


def image_tags(extra_packages: Sequence[str] = ()) -> ImageSet:
    """The tags `ensure_images` returns, computed without Docker (e.g. to write a compose file)."""
    return ImageBuilder(quiet=True).tags(extra_packages)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the missing images (base, proxy sidecar)")
    build.add_argument(
        "--packages", default="", help="extra Debian packages for the base, comma-separated"
    )
    build.add_argument("--quiet", action="store_true", help="no progress output")
    sub.add_parser("list", help="show our images and whether each is current")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`chaos images build [--packages a,b] [--quiet]` and `chaos images list`."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "build":
            extras = [p.strip() for p in args.packages.split(",") if p.strip()]
            report = ImageBuilder(quiet=args.quiet).ensure(extras)
            print(f"base  {report.images.base}\nproxy {report.images.proxy}")
            return 0
        rows = ImageBuilder(quiet=True).list_images()
        for info in rows:
            state = {True: "current", False: "stale", None: "-"}[info.current]
            print(f"{info.tag:45} {info.kind:6} {state:8} {info.size_mb:7.1f} MB  {info.created}")
        if not rows:
            print("no pytest-chaos images; run `chaos images build`")
        return 0
    except ChaosError as err:
        print(f"chaos images {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
