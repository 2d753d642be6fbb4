"""chaos.images pure logic: reading the host's apt sources, content-hash tags, the proxy's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.aptsources import (
    AptSource,
    find_mirror,
    host_suite,
    parse_deb822,
    parse_one_line,
    read_sources,
)
from chaos.errors import ConfigError, EnvironmentFailure
from chaos.images import (
    SOURCE_ROOT,
    Layer,
    base_tag,
    debootstrap_echo,
    module_closure,
    package_set,
    proxy_layer,
)

ONE_LINE = """\
# the main archive, with options
deb [arch=amd64 signed-by=/usr/share/keyrings/example.gpg] http://mirror.example/debian/ trixie main contrib
deb-src http://mirror.example/debian trixie main
deb http://security.example/debian-security trixie-security main  # not the main suite
deb https://vendor.example/apt stable main
"""

DEB822 = """\
# a comment before the first stanza
Types: deb deb-src
URIs: http://first.example/debian
Suites: trixie trixie-updates
Components: main
Enabled: no

Types: deb
URIs: http://second.example/debian
  http://third.example/debian
Suites: trixie
# a comment inside a stanza
Components: contrib main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZexampleexample
 -----END PGP PUBLIC KEY BLOCK-----

types: deb
uris: http://fourth.example/debian
suites: trixie
components: main
signed-by: /usr/share/keyrings/example.gpg
"""


def test_one_line_format_reads_deb_entries_with_options_and_line_numbers() -> None:
    found = parse_one_line(ONE_LINE, "sources.list")
    assert [s.uri for s in found] == [
        "http://mirror.example/debian",
        "http://security.example/debian-security",
        "https://vendor.example/apt",
    ]
    first = found[0]
    assert first.suites == ("trixie",)
    assert first.components == ("main", "contrib")
    assert first.signed_by == "/usr/share/keyrings/example.gpg"
    assert first.origin == "sources.list:2"
    assert found[1].origin == "sources.list:4"


def test_deb822_skips_disabled_stanzas_and_inline_keys_and_reads_every_uri() -> None:
    found = parse_deb822(DEB822, "debian.sources")
    assert [s.uri for s in found] == [
        "http://second.example/debian",
        "http://third.example/debian",
        "http://fourth.example/debian",
    ]
    assert found[0].components == ("contrib", "main")
    assert found[0].signed_by is None  # an inline key block is no keyring file
    assert found[0].origin == "debian.sources:8"
    assert found[2].signed_by == "/usr/share/keyrings/example.gpg"  # field names are case-blind
    assert found[2].origin == "debian.sources:20"


def test_find_mirror_takes_the_first_entry_serving_main_of_the_suite() -> None:
    sources = parse_one_line(ONE_LINE, "a.list") + parse_deb822(DEB822, "b.sources")
    assert find_mirror(sources, "trixie").uri == "http://mirror.example/debian"
    only_deb822 = parse_deb822(DEB822, "b.sources")
    assert find_mirror(only_deb822, "trixie").uri == "http://second.example/debian"


@pytest.mark.parametrize(
    "source",
    [
        AptSource("http://mirror.example/debian", ("trixie-security",), ("main",), "x:1"),
        AptSource("http://mirror.example/debian", ("trixie",), ("contrib",), "x:1"),
        AptSource("cdrom:[Debian GNU/Linux]/", ("trixie",), ("main",), "x:1"),
        AptSource("mirror+file:/etc/apt/mirrors.txt", ("trixie",), ("main",), "x:1"),
    ],
    ids=["other-suite", "no-main", "cdrom", "mirror-list"],
)
def test_entries_that_cannot_serve_debootstrap_are_refused(source: AptSource) -> None:
    with pytest.raises(EnvironmentFailure) as info:
        find_mirror([source], "trixie", where="/somewhere/apt")
    message = str(info.value)
    assert "'trixie'" in message and "/somewhere/apt" in message and "x:1" in message


def test_read_sources_follows_apt_file_order_and_suffixes(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("deb http://zero.example/debian trixie main\n")
    (apt / "sources.list.d" / "b.sources").write_text(
        "Types: deb\nURIs: http://two.example/debian\nSuites: trixie\nComponents: main\n"
    )
    (apt / "sources.list.d" / "a.list").write_text("deb http://one.example/debian trixie main\n")
    (apt / "sources.list.d" / "c.list.disabled").write_text("deb http://x.example/d trixie main\n")
    found = read_sources(tmp_path)
    assert [s.uri for s in found] == [
        "http://zero.example/debian",
        "http://one.example/debian",
        "http://two.example/debian",
    ]
    assert found[1].origin == f"{apt / 'sources.list.d' / 'a.list'}:1"


def test_read_sources_without_any_file_finds_nothing(tmp_path: Path) -> None:
    assert read_sources(tmp_path) == []
    with pytest.raises(EnvironmentFailure, match="entries seen: none"):
        find_mirror(read_sources(tmp_path), "trixie")


def test_host_suite_reads_the_codename(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME="trixie"\n')
    assert host_suite(tmp_path) == "trixie"
    (tmp_path / "os-release").write_text('NAME="Something"\n')
    with pytest.raises(EnvironmentFailure, match="VERSION_CODENAME"):
        host_suite(tmp_path)
    with pytest.raises(EnvironmentFailure, match="cannot read"):
        host_suite(tmp_path / "missing")


def test_package_set_always_has_python3_and_checks_names() -> None:
    assert package_set(()) == ("python3",)
    assert package_set(["redis-server", "python3", "python3-redis"]) == (
        "python3",
        "python3-redis",
        "redis-server",
    )
    with pytest.raises(ConfigError, match="'Redis Server'"):
        package_set(["Redis Server"])
    with pytest.raises(ConfigError, match="'--include=x'"):
        package_set(["--include=x"])


def test_base_tag_is_a_content_hash_of_suite_and_package_set() -> None:
    tag = base_tag("trixie", ["redis-server", "python3-redis"])
    assert tag.startswith("pytest-chaos/base:")
    assert tag == base_tag("trixie", ["python3-redis", "redis-server", "python3"])
    assert tag != base_tag("bookworm", ["python3-redis", "redis-server"])
    assert tag != base_tag("trixie", ["python3-redis"])
    assert base_tag("trixie", ()) == base_tag("trixie", ["python3"])


def test_layer_tag_follows_base_and_file_contents(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text("print('v1')\n")
    layer = Layer("pytest-chaos/demo", "demo", (("app.py", source),), ('CMD ["python3"]',))
    first = layer.tag("pytest-chaos/base:aaaa")
    assert first.startswith("pytest-chaos/demo:")
    assert first == layer.tag("pytest-chaos/base:aaaa")
    assert first != layer.tag("pytest-chaos/base:bbbb")
    source.write_text("print('v2')\n")
    assert first != layer.tag("pytest-chaos/base:aaaa")
    dockerfile = layer.dockerfile("pytest-chaos/base:aaaa")
    assert dockerfile.startswith("FROM pytest-chaos/base:aaaa\n")
    assert "io.pytest-chaos.image=demo" in dockerfile


def test_proxy_layer_copies_exactly_what_the_proxy_imports() -> None:
    files = dict(proxy_layer().files)
    assert "faults/proxy/__main__.py" in files
    assert "faults/proxy/server.py" in files
    assert "faults/proxy/toxics/latency.py" in files
    assert "chaos/errors.py" in files and "chaos/__init__.py" in files
    assert not any(name.startswith(("chaos/plugin", "reconcilers/", "tests/")) for name in files)
    assert all(path == SOURCE_ROOT / name for name, path in files.items())
    cmd = proxy_layer().dockerfile("b")
    assert '"-m", "faults.proxy", "--listen", "0.0.0.0:8474"' in cmd


def test_module_closure_follows_imports_between_local_modules(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "used.py").write_text("import json\n")
    (tmp_path / "pkg" / "unused.py").write_text("")
    (tmp_path / "main.py").write_text("from pkg import used\n")
    names = [name for name, _ in module_closure(tmp_path / "main.py", tmp_path)]
    assert names == ["main.py", "pkg/__init__.py", "pkg/used.py"]


def test_debootstrap_echo_shows_each_phase_once_and_every_warning() -> None:
    echo = debootstrap_echo()
    lines = [
        "I: Retrieving InRelease",
        "I: Retrieving Packages",
        "I: Validating Packages",
        "I: Retrieving adduser 3.134",
        "W: something odd",
        "W: something odd again",
        "plain dpkg chatter",
        "I: Configuring the base system...",
    ]
    assert [line for line in lines if echo(line)] == [
        "I: Retrieving InRelease",
        "I: Validating Packages",
        "W: something odd",
        "W: something odd again",
        "I: Configuring the base system...",
    ]
