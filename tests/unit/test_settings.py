"""Settings resolve with one precedence (CLI > env > ini > default) and bad values name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import ConfigError
from chaos.settings import marker_overrides, resolve_settings


def _ini(values: dict[str, str]):
    return lambda name: values.get(name)


def test_defaults(tmp_path: Path) -> None:
    s = resolve_settings({}, _ini({}), {}, rootdir=tmp_path)
    assert s.env == "local" and s.catalog is None and s.baseline == 1.0
    assert s.results == tmp_path / "chaos-results"
    assert 0 <= s.seed < 2**32


def test_precedence_cli_over_env_over_ini(tmp_path: Path) -> None:
    ini = _ini({"chaos_seed": "1", "chaos_catalog": "from-ini.yaml"})
    env = {"CHAOS_SEED": "2"}
    assert resolve_settings({}, ini, {}, rootdir=tmp_path).seed == 1
    assert resolve_settings({}, ini, env, rootdir=tmp_path).seed == 2
    assert resolve_settings({"seed": "3"}, ini, env, rootdir=tmp_path).seed == 3
    assert resolve_settings({}, ini, {}, rootdir=tmp_path).catalog == tmp_path / "from-ini.yaml"


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        (
            {"env": "kubernetes"},
            r"--chaos-env / CHAOS_ENV / chaos_env: 'kubernetes' is not one of local, compose",
        ),
        ({"seed": "abc"}, r"--chaos-seed .*'abc' is not an integer seed"),
        ({"baseline": "5 parsecs"}, r"--chaos-baseline .*5 parsecs"),
    ],
)
def test_bad_values_name_the_option(tmp_path: Path, cli, message) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_settings(cli, _ini({}), {}, rootdir=tmp_path)


def test_marker_overrides() -> None:
    assert marker_overrides({"rto": "15s", "baseline": "500ms"}, "t") == {
        "rto": 15.0,
        "baseline": 0.5,
    }
    with pytest.raises(
        ConfigError, match=r"test_x: @pytest.mark.chaos got unknown argument\(s\) rtoo"
    ):
        marker_overrides({"rtoo": "1s"}, "test_x")
    with pytest.raises(ConfigError, match=r"chaos\(rto=...\)"):
        marker_overrides({"rto": "soon"}, "test_x")
