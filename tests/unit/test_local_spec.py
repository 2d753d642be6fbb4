"""local.yaml loads against its catalog; every mistake is reported at file:line:field."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.catalog import Catalog, load_catalog
from chaos.environments.local import assign_addresses
from chaos.environments.local_spec import LocalService, RestartPolicy, load_local_spec
from chaos.errors import UnknownTarget
from tests.unit.test_yamlsource import expect_error, line_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalog"

BASE = """\
version: 1
services:
  store:
    command: ["python3", "-m", "store", "--port", "9101"]
    cwd: srv
    env: {CACHE_MB: 64, RATIO: 0.5, MODE: fast}
    host: 127.0.0.12
    restart: no
    ready_timeout: 2s
    stop_grace: 500ms
    setup: mkdir -p 'data dir'
  web:
    command: python3 -m web --store "$STORE_ADDR"
    port: 9200
"""


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(FIXTURES / "chaos.yaml")


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "srv").mkdir(exist_ok=True)
    path = tmp_path / "local.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur once in BASE"
    return BASE.replace(old, new)


def test_services_are_typed_with_defaults(tmp_path: Path, catalog: Catalog) -> None:
    spec = load_local_spec(write(tmp_path, BASE), catalog)
    assert spec.path == (tmp_path / "local.yaml").resolve()
    assert list(spec.services) == ["store", "web"]
    assert spec.service("store") == LocalService(
        name="store",
        command=("python3", "-m", "store", "--port", "9101"),
        cwd=(tmp_path / "srv").resolve(),
        env={"CACHE_MB": "64", "RATIO": "0.5", "MODE": "fast"},
        host="127.0.0.12",
        port=9101,  # from the catalog
        restart=RestartPolicy.NO,  # `no` is not read as a YAML boolean here
        ready_timeout=2.0,
        stop_grace=0.5,
        setup=("mkdir", "-p", "data dir"),
    )
    web = spec.service("web")
    assert web.command == ("python3", "-m", "web", "--store", "$STORE_ADDR")  # no shell expansion
    assert (web.cwd, web.env, web.host, web.port) == (tmp_path.resolve(), {}, None, 9200)
    assert (web.restart, web.ready_timeout, web.stop_grace, web.setup) == (
        RestartPolicy.ON_FAILURE,
        15.0,
        3.0,
        None,
    )


def test_the_shipped_fixture_loads(catalog: Catalog) -> None:
    spec = load_local_spec(catalog.environments["local"], catalog)
    assert spec.service("web").restart is RestartPolicy.ALWAYS
    assert spec.service("web").env == {"STORE_TIMEOUT": "2"}
    assert spec.service("store").port == catalog.service("store").port


def test_port_zero_means_a_free_port_each_time_the_environment_is_built(
    tmp_path: Path, catalog: Catalog
) -> None:
    """What lets each pytest-xdist worker run its own copy of the services."""
    text = edit("    port: 9200", "    port: 0\n    host: 127.0.0.12").replace(
        "restart:", "port: 0\n    restart:"
    )
    spec = load_local_spec(write(tmp_path, text), catalog)
    assert spec.service("store").port == spec.service("web").port == 0  # no clash: both free
    first, second = assign_addresses(catalog, spec), assign_addresses(catalog, spec)
    for addresses in (first, second):
        assert {host for host, _ in addresses.values()} == {"127.0.0.12"}
        assert all(port > 0 for _, port in addresses.values())
        assert addresses["store"] != addresses["web"]


def test_unknown_service_lookup_lists_the_valid_ones(tmp_path: Path, catalog: Catalog) -> None:
    spec = load_local_spec(write(tmp_path, BASE), catalog)
    with pytest.raises(UnknownTarget, match=r"'stor' \(did you mean 'store'\?\).*store, web"):
        spec.service("stor")


CASES = {
    "missing service": (
        '  web:\n    command: python3 -m web --store "$STORE_ADDR"\n    port: 9200\n',
        "",
        "services:",
        "services.web",
        "catalog service 'web' has no entry",
    ),
    "extra service": (
        "  web:",
        "  webb:\n    command: x\n  web:",
        "webb:",
        "services.webb",
        "service 'webb' (did you mean 'web'?) is not in the catalog",
    ),
    "unknown key": (
        "    port: 9200",
        "    prot: 9200",
        "prot:",
        "services.web.prot",
        "unknown key 'prot' (did you mean 'port'?)",
    ),
    "missing command": (
        '    command: python3 -m web --store "$STORE_ADDR"\n',
        "",
        "  web:",
        "services.web.command",
        "required key 'command' is missing",
    ),
    "empty command": (
        'command: python3 -m web --store "$STORE_ADDR"',
        "command: []",
        "command: []",
        "services.web.command",
        "the command is empty",
    ),
    "unbalanced quotes": (
        'command: python3 -m web --store "$STORE_ADDR"',
        "command: python3 -m 'web",
        "command: python3",
        "services.web.command",
        "fix the quotes",
    ),
    "number in command list": (
        '"--port", "9101"]',
        '"--port", 9101]',
        "command: [",
        "services.store.command[4]",
        'write "9101" in quotes',
    ),
    "missing cwd": ("cwd: srv", "cwd: nowhere", "cwd:", "services.store.cwd", "does not exist"),
    "boolean env": (
        "MODE: fast",
        "MODE: on",
        "env:",
        "services.store.env.MODE",
        "got 'on' (a boolean); quote it",
    ),
    "list env": (
        "MODE: fast",
        "MODE: [a]",
        "env:",
        "services.store.env.MODE",
        "got a list",
    ),
    "env set by an edge": (
        "    port: 9200",
        "    port: 9200\n    env:\n      STORE_ADDR: 127.0.0.1:1",
        "STORE_ADDR: 127",
        "services.web.env.STORE_ADDR",
        "set by the edge 'web -> store'",
    ),
    "host not loopback": (
        "host: 127.0.0.12",
        "host: 10.0.0.1",
        "host:",
        "services.store.host",
        "not a loopback address",
    ),
    "host not an address": (
        "host: 127.0.0.12",
        "host: localhost",
        "host:",
        "services.store.host",
        "not an IP address",
    ),
    "port out of range": (
        "port: 9200",
        "port: 65536",
        "port: 65536",
        "services.web.port",
        "between 0 and 65535",
    ),
    "bad restart": (
        "restart: no",
        "restart: on_failure",
        "restart:",
        "services.store.restart",
        "(did you mean 'on-failure'?)",
    ),
    "zero ready timeout": (
        "ready_timeout: 2s",
        "ready_timeout: 0",
        "ready_timeout",
        "services.store.ready_timeout",
        "longer than zero",
    ),
    "bad stop grace": (
        "stop_grace: 500ms",
        "stop_grace: 5 parsecs",
        "stop_grace",
        "services.store.stop_grace",
        "'5 parsecs'",
    ),
    "same host and port": (
        "    port: 9200",
        "    port: 9101\n    host: '127.0.0.12'",
        "'127.0.0.12'",
        "services.web.host",
        "store already uses 127.0.0.12:9101",
    ),
    "unsupported version": ("version: 1", "version: 3", "version:", "version", "version 1"),
    "duplicate key": (
        "    port: 9200\n",
        "    port: 9200\n    port: 9201\n",
        "9201",
        "services.web.port",
        "duplicate key 'port'",
    ),
}


@pytest.mark.parametrize(("old", "new", "marker", "field", "says"), CASES.values(), ids=CASES)
def test_malformed_specs_name_file_line_and_field(
    tmp_path: Path, catalog: Catalog, old: str, new: str, marker: str, field: str, says: str
) -> None:
    text = edit(old, new)
    path = write(tmp_path, text)
    expect_error(
        lambda: load_local_spec(path, catalog),
        file=path,
        line=line_of(text, marker),
        field=field,
        says=says,
    )


def test_version_is_optional(tmp_path: Path, catalog: Catalog) -> None:
    spec = load_local_spec(write(tmp_path, edit("version: 1\n", "")), catalog)
    assert set(spec.services) == {"store", "web"}


def test_services_section_is_required(tmp_path: Path, catalog: Catalog) -> None:
    path = write(tmp_path, "version: 1\n")
    expect_error(
        lambda: load_local_spec(path, catalog),
        file=path,
        line=1,
        field="services",
        says="required key 'services'",
    )
