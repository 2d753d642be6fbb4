"""Run settings resolved once, with one precedence rule: marker > command line > environment > ini."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.errors import ConfigError
from chaos.ledger import default_state_dir
from chaos.units import parse_duration

ENV_KINDS = ("local", "compose")


@dataclass(frozen=True)
class Option:
    """One setting: its CLI flag, ini name and environment variable share one help text."""

    name: str
    flag: str
    env: str
    help: str
    default: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option(
        "catalog",
        "--chaos-catalog",
        "CHAOS_CATALOG",
        "path of the service catalog (chaos.yaml) the experiments run against",
    ),
    Option(
        "env",
        "--chaos-env",
        "CHAOS_ENV",
        "environment kind: 'local' (processes, the default) or 'compose' (Docker Compose)",
        "local",
    ),
    Option(
        "seed",
        "--chaos-seed",
        "CHAOS_SEED",
        "seed for every random choice (toxicity, schedules); replays a run; default: random",
    ),
    Option(
        "results",
        "--chaos-results",
        "CHAOS_RESULTS",
        "directory for the journal and reports",
        "chaos-results",
    ),
    Option(
        "proxy_url",
        "--chaos-proxy-url",
        "CHAOS_PROXY_URL",
        "admin URL of a real Toxiproxy server to use instead of the built-in proxy",
    ),
    Option(
        "state_dir",
        "--chaos-state-dir",
        "CHAOS_STATE_DIR",
        "directory of the fault ledger that `chaos clean` sweeps; default ~/.local/state/pytest-chaos",
    ),
    Option(
        "baseline",
        "--chaos-baseline",
        "CHAOS_BASELINE",
        "how long steady state is sampled before the first fault (e.g. 1s)",
        "1s",
    ),
)


@dataclass(frozen=True)
class ChaosSettings:
    """Everything a run needs to know, validated."""

    catalog: Path | None
    env: str
    seed: int
    results: Path
    proxy_url: str | None
    state_dir: Path
    baseline: float


def resolve_settings(
    cli: Mapping[str, Any],
    ini: Callable[[str], Any],
    environ: Mapping[str, str] = os.environ,
    *,
    rootdir: Path,
) -> ChaosSettings:
    """Resolve every option (CLI > env > ini > default); paths from ini are relative to rootdir."""
    raw: dict[str, tuple[str | None, Path]] = {}
    for opt in OPTIONS:
        if cli.get(opt.name) not in (None, ""):
            raw[opt.name] = (str(cli[opt.name]), Path.cwd())
        elif environ.get(opt.env):
            raw[opt.name] = (environ[opt.env], Path.cwd())
        elif ini(f"chaos_{opt.name}"):
            raw[opt.name] = (str(ini(f"chaos_{opt.name}")), rootdir)
        else:
            raw[opt.name] = (opt.default, rootdir)
    return ChaosSettings(
        catalog=_path(raw["catalog"]),
        env=_choice("env", raw["env"][0], ENV_KINDS),
        seed=_seed(raw["seed"][0]),
        results=_path(raw["results"]) or rootdir / "chaos-results",
        proxy_url=raw["proxy_url"][0],
        state_dir=_path(raw["state_dir"]) or default_state_dir(),
        baseline=_duration("baseline", raw["baseline"][0] or "1s"),
    )


def _flag(name: str) -> str:
    opt = next(o for o in OPTIONS if o.name == name)
    return f"{opt.flag} / {opt.env} / chaos_{name}"


def _path(value: tuple[str | None, Path]) -> Path | None:
    text, base = value
    return None if not text else (base / Path(text).expanduser()).resolve()


def _choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{_flag(name)}: {value!r} is not one of {', '.join(choices)}")
    return value


def _seed(value: str | None) -> int:
    if value is None:
        return secrets.randbelow(2**32)
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(f"{_flag('seed')}: {value!r} is not an integer seed") from None


def _duration(name: str, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ConfigError(f"{_flag(name)}: {err}") from None


MARKER_KEYS = ("rto", "baseline")


def marker_overrides(kwargs: Mapping[str, Any], where: str) -> dict[str, float]:
    """Validate `@pytest.mark.chaos(rto="15s", baseline="2s")` keyword arguments."""
    unknown = sorted(set(kwargs) - set(MARKER_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: @pytest.mark.chaos got unknown argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(MARKER_KEYS)}"
        )
    out: dict[str, float] = {}
    for key, value in kwargs.items():
        try:
            out[key] = parse_duration(value)
        except ValueError as err:
            raise ConfigError(f"{where}: @pytest.mark.chaos({key}=...): {err}") from None
    return out
