"""The shop's reconciliation invariants, checked against PostgreSQL and the payments ledger.

Every order a customer saw confirmed is paid exactly once (for its amount, by the charge it
names); no payment exists without an order; no order stays pending longer than the reconciler
needs. Each check takes the running environment (`experiment.verify(*INVARIANTS)`) and raises
InvariantViolated naming the orders and charges at fault.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg2
import psycopg2.extras

from chaos.errors import EnvironmentFailure, InvariantViolated

if TYPE_CHECKING:
    from chaos.environments.base import Environment

READ_TIMEOUT = 5.0  # seconds for one read of either store
SETTLE_WITHIN = 10.0  # a pending order older than this has been missed by the reconciler
SETTLE_WAIT = 15.0  # how long pending_orders_get_settled waits for the reconciler to catch up
SHOWN = 10  # problems listed in one message at most


@dataclass(frozen=True)
class Order:
    """One row of the orders table, as the checks need it."""

    id: str
    customer: str
    amount_cents: int
    status: str
    charge_id: str | None
    age: float  # seconds since the order was written


@dataclass(frozen=True)
class Charge:
    """One line of the payments ledger."""

    id: str
    key: str
    amount_cents: int


@dataclass(frozen=True)
class Snapshot:
    """Both stores read so that in-flight checkouts cannot look like violations.

    Charges are read before the orders (every charge there has its order written already, so an
    orphan is real) and again after them (every charge behind an order confirmed by then is in).
    """

    charges_before: tuple[Charge, ...]
    orders: tuple[Order, ...]
    charges_after: tuple[Charge, ...]


def paid_exactly_once_problems(snap: Snapshot) -> list[str]:
    """Confirmed orders paid other than once, or by the wrong charge; any order paid twice."""
    by_key: dict[str, list[Charge]] = {}
    for charge in snap.charges_after:
        by_key.setdefault(charge.key, []).append(charge)
    problems = []
    for order in snap.orders:
        charges = by_key.get(order.id, [])
        if len(charges) > 1 or (order.status == "confirmed" and len(charges) != 1):
            ids = ", ".join(c.id for c in charges) or "none"
            problems.append(
                f"order {order.id} ({order.status}, {order.customer}) paid {len(charges)} "
                f"times: {ids}"
            )
        elif order.status == "confirmed":
            charge = charges[0]
            if charge.amount_cents != order.amount_cents or charge.id != order.charge_id:
                problems.append(
                    f"order {order.id} is confirmed with charge {order.charge_id} for "
                    f"{order.amount_cents} cents, but payments holds {charge.id} for "
                    f"{charge.amount_cents} cents"
                )
    return problems


def orphan_payment_problems(snap: Snapshot) -> list[str]:
    """Charges whose idempotency key names no order."""
    known = {order.id for order in snap.orders}
    return [
        f"charge {c.id} ({c.amount_cents} cents, key {c.key}) has no order"
        for c in snap.charges_before
        if c.key not in known
    ]


def stuck_pending_problems(snap: Snapshot, within: float = SETTLE_WITHIN) -> list[str]:
    """Orders still pending `within` seconds after they were written."""
    return [
        f"order {o.id} ({o.customer}) still pending after {o.age:.1f}s"
        for o in snap.orders
        if o.status == "pending" and o.age > within
    ]


# -- reading the stores ------------------------------------------------------------------------


def _address(env: Environment, service: str) -> tuple[str, int]:
    parts = urlsplit(env.endpoint(service))
    if parts.hostname is None or parts.port is None:
        raise EnvironmentFailure(f"cannot tell host and port of {service} from {parts.geturl()!r}")
    return parts.hostname, parts.port


def read_orders(env: Environment) -> tuple[Order, ...]:
    """Every order, straight from PostgreSQL (not through the edge's proxy)."""
    host, port = _address(env, "postgres")
    query = (
        "SELECT id, customer, amount_cents, status, charge_id,"
        " extract(epoch FROM now() - created_at)::float AS age FROM orders"
    )
    try:
        conn = psycopg2.connect(
            host=host, port=port, user="shop", dbname="shop", connect_timeout=int(READ_TIMEOUT)
        )
    except psycopg2.Error as err:
        raise EnvironmentFailure(f"cannot read the orders from {host}:{port}: {err}") from err
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute(query)
            return tuple(Order(**row) for row in cursor.fetchall())
    finally:
        conn.close()


def read_charges(env: Environment) -> tuple[Charge, ...]:
    """Every line of the payments ledger, through its GET /charges."""
    url = env.endpoint("payments").rstrip("/") + "/charges"
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT) as response:
            lines: list[dict[str, Any]] = json.load(response)["charges"]
    except (OSError, ValueError, KeyError) as err:
        raise EnvironmentFailure(f"cannot read the payments ledger at {url}: {err}") from err
    return tuple(Charge(c["id"], c["key"], c["amount_cents"]) for c in lines)


def snapshot(env: Environment) -> Snapshot:
    before = read_charges(env)
    orders = read_orders(env)
    return Snapshot(before, orders, read_charges(env))


# -- the checks experiments call ---------------------------------------------------------------


def _fail_on(name: str, problems: Sequence[str], snap: Snapshot) -> None:
    if problems:
        counts = Counter(order.status for order in snap.orders)
        shown = "\n  ".join(problems[:SHOWN])
        more = f"\n  … and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise InvariantViolated(
            f"{name}: {len(problems)} problems among {len(snap.orders)} orders {dict(counts)} "
            f"and {len(snap.charges_after)} charges:\n  {shown}{more}"
        )


def every_confirmed_order_paid_once(env: Environment) -> None:
    snap = snapshot(env)
    _fail_on("every confirmed order is paid exactly once", paid_exactly_once_problems(snap), snap)


def no_payment_without_an_order(env: Environment) -> None:
    snap = snapshot(env)
    _fail_on("no payment without an order", orphan_payment_problems(snap), snap)


def pending_orders_get_settled(
    env: Environment, *, wait: float = SETTLE_WAIT, poll: float = 0.5
) -> None:
    """Wait (bounded) until no order is pending past SETTLE_WITHIN, then check all were paid once."""
    deadline = time.monotonic() + wait
    snap = snapshot(env)
    while stuck_pending_problems(snap) and time.monotonic() < deadline:
        time.sleep(poll)
        snap = snapshot(env)
    _fail_on("pending orders get settled", stuck_pending_problems(snap), snap)
    _fail_on("settled orders are paid exactly once", paid_exactly_once_problems(snap), snap)


INVARIANTS: tuple[Callable[[Environment], None], ...] = (
    every_confirmed_order_paid_once,
    no_payment_without_an_order,
    pending_orders_get_settled,
)
