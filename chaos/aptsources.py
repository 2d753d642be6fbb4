"""The host's apt sources, read at run time: which mirror serves the Debian suite we bootstrap.

Never a mirror written into the repo: images are built from whatever the host already uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chaos.errors import EnvironmentFailure

_MIRROR_SCHEMES = ("http://", "https://", "file:/")
_ONE_LINE_OPTIONS = re.compile(r"\[[^\]]*\]")


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry of the host's apt sources; `origin` says file:line for messages."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str
    signed_by: str | None = None

    def serves(self, suite: str) -> bool:
        """True when this entry is the distribution's main archive for `suite`."""
        return (
            suite in self.suites
            and "main" in self.components
            and self.uri.startswith(_MIRROR_SCHEMES)
        )


def parse_one_line(text: str, origin: str) -> list[AptSource]:
    """Parse the classic `deb [opts] uri suite component...` format of sources.list."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        options = _ONE_LINE_OPTIONS.search(line)
        words = _ONE_LINE_OPTIONS.sub(" ", line).split()
        if len(words) < 3 or words[0] != "deb":
            continue
        opts = dict(
            o.split("=", 1) for o in (options[0][1:-1].split() if options else ()) if "=" in o
        )
        found.append(
            AptSource(
                uri=words[1].rstrip("/"),
                suites=(words[2],),
                components=tuple(words[3:]),
                origin=f"{origin}:{number}",
                signed_by=opts.get("signed-by"),
            )
        )
    return found


def parse_deb822(text: str, origin: str) -> list[AptSource]:
    """Parse the deb822 `.sources` format: stanzas of Types/URIs/Suites/Components fields."""
    found = []
    for start, fields in _deb822_stanzas(text):
        types = fields.get("types", "").split()
        enabled = fields.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
        if "deb" not in types or not enabled:
            continue
        signed_by = fields.get("signed-by", "").strip()
        for uri in fields.get("uris", "").split():
            found.append(
                AptSource(
                    uri=uri.rstrip("/"),
                    suites=tuple(fields.get("suites", "").split()),
                    components=tuple(fields.get("components", "").split()),
                    origin=f"{origin}:{start}",
                    signed_by=signed_by if signed_by and "\n" not in signed_by else None,
                )
            )
    return found


def _deb822_stanzas(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first line number, lower-cased field -> value) per stanza; comments dropped."""
    fields: dict[str, str] = {}
    start, key = 0, ""
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                yield start, fields
            fields, key = {}, ""
        elif line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            start = start if fields else number
            key = key.lower()
            fields[key] = value


def read_sources(etc: Path = Path("/etc")) -> list[AptSource]:
    """Every `deb` entry, in apt's own order: sources.list, then sources.list.d/ sorted."""
    apt = etc / "apt"
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    found: list[AptSource] = []
    for path in files:
        if not path.is_file() or path.suffix not in (".list", ".sources"):
            continue
        text = path.read_text(errors="replace")
        parse = parse_deb822 if path.suffix == ".sources" else parse_one_line
        found.extend(parse(text, str(path)))
    return found


def host_suite(etc: Path = Path("/etc")) -> str:
    """The host's release codename (VERSION_CODENAME of os-release), e.g. the suite to bootstrap."""
    path = etc / "os-release"
    try:
        text = path.read_text()
    except OSError as err:
        raise EnvironmentFailure(f"cannot read {path} to learn the host's release: {err}") from err
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME" and value.strip().strip("\"'"):
            return value.strip().strip("\"'")
    raise EnvironmentFailure(
        f"{path} has no VERSION_CODENAME: cannot tell which Debian suite to bootstrap"
    )


def find_mirror(sources: Sequence[AptSource], suite: str, where: str = "/etc/apt") -> AptSource:
    """The first entry serving the main archive of `suite`, as apt would use it."""
    for source in sources:
        if source.serves(suite):
            return source
    seen = "; ".join(f"{s.origin}: {s.uri} {' '.join(s.suites)}" for s in sources) or "none"
    raise EnvironmentFailure(
        f"no apt source in {where} serves suite {suite!r} with component 'main' over http(s) or "
        f"file (entries seen: {seen}); add the Debian archive for {suite} to the host's apt "
        "sources (e.g. run `apt-get update` successfully first), then retry"
    )
