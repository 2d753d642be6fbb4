"""Run the shop's off-the-shelf stores (PostgreSQL, Redis) as plain local processes on HOST:PORT.

    datastores.py postgres-setup   # fresh cluster with database "shop" (owner "shop", trust auth)
    datastores.py postgres         # exec the postmaster on that cluster
    datastores.py redis            # exec redis-server, no persistence (a pure cache)

Each command ends in exec, so the supervisor's pid is the server's pid and a kill is a real crash.
PostgreSQL refuses to run as root: when started as root, both steps drop to the `postgres` user
(SHOP_PG_USER) with setpriv, and the data directory belongs to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from common import env_str, state_dir

SETUP_TIMEOUT = 120.0
POSTGRES_SETTINGS = {
    "unix_socket_directories": "",  # TCP only: no socket in a root-owned /var/run
    # Speed over durability across an OS crash only: a killed server keeps every commit (the
    # page cache survives it). synchronous_commit stays on — with it off, a crash loses the last
    # commits, and payments would hold charges for orders PostgreSQL forgot (the game day's
    # data-centre experiment found exactly that).
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "40",
    "shared_buffers": "16MB",
}


def postgres_bin(program: str) -> str:
    """Path of a PostgreSQL server program: $PG_BIN, Debian's newest version, or PATH."""
    folders = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else []
    folders += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in folders:
        candidate = Path(folder) / program
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(program)
    if found is None:
        sys.exit(
            f"cannot find PostgreSQL's {program!r}: install PostgreSQL (examples/shop/setup.sh) "
            "or set PG_BIN to the folder holding it"
        )
    return found


def as_postgres_user() -> list[str]:
    """The command prefix that drops root to the PostgreSQL user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    user = os.environ.get("SHOP_PG_USER", "postgres")
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def postgres_setup(data: Path) -> None:
    """Create a new cluster in `data` (wiping an old one) with the database "shop"."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True, mode=0o700)
    if os.geteuid() == 0:
        user = pwd.getpwnam(os.environ.get("SHOP_PG_USER", "postgres"))
        os.chown(data, user.pw_uid, user.pw_gid)
    drop = as_postgres_user()
    initdb = [postgres_bin("initdb"), "-D", str(data), "-U", "shop", "--auth=trust", "--no-locale"]
    subprocess.run([*drop, *initdb, "-E", "UTF8"], check=True, timeout=SETUP_TIMEOUT)
    single = [postgres_bin("postgres"), "--single", "-D", str(data), "postgres"]
    subprocess.run(
        [*drop, *single], input=b"CREATE DATABASE shop;\n", check=True, timeout=SETUP_TIMEOUT
    )
    print(f"postgres-setup: cluster with database 'shop' ready in {data}", flush=True)


def postgres_exec(data: Path) -> None:
    if not (data / "PG_VERSION").is_file():
        sys.exit(f"no PostgreSQL cluster in {data}: run `datastores.py postgres-setup` first")
    settings = [arg for key, value in POSTGRES_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    listen = ["-h", env_str("HOST"), "-p", env_str("PORT")]
    command = [*as_postgres_user(), postgres_bin("postgres"), "-D", str(data), *listen, *settings]
    os.execvp(command[0], command)


def redis_exec() -> None:
    command = [
        "redis-server",
        *("--bind", env_str("HOST"), "--port", env_str("PORT")),
        *("--save", "", "--appendonly", "no"),  # a cache: nothing survives a restart
    ]
    os.execvp(command[0], command)


def main(argv: list[str]) -> None:
    commands = {
        "postgres-setup": lambda: postgres_setup(state_dir("postgres")),
        "postgres": lambda: postgres_exec(state_dir("postgres")),
        "redis": redis_exec,
    }
    if len(argv) != 2 or argv[1] not in commands:
        sys.exit(f"usage: {argv[0]} {{{'|'.join(commands)}}}")
    commands[argv[1]]()


if __name__ == "__main__":
    main(sys.argv)
