"""The example shop without faults: real PostgreSQL, Redis and services, and checkers that can fail."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos.catalog import load_catalog
from chaos.environments.local import LocalEnvironment
from chaos.errors import InvariantViolated
from examples.shop.invariants import (
    Charge,
    Order,
    Snapshot,
    every_confirmed_order_paid_once,
    no_payment_without_an_order,
    orphan_payment_problems,
    paid_exactly_once_problems,
    pending_orders_get_settled,
    stuck_pending_problems,
)

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
TIMEOUT = 5.0
needs_stores = pytest.mark.skipif(
    not (shutil.which("redis-server") and list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))),
    reason="PostgreSQL or Redis is not installed: run examples/shop/setup.sh",
)


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    """A private SHOP_STATE_DIR the unprivileged postgres user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="shop-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def shop(state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    """The weak shop, started by the local environment as the game day starts it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOP_STATE_DIR", str(state_dir))  # inherited by the services
        env = LocalEnvironment.from_catalog(
            load_catalog(SHOP / "chaos.yaml"),
            run_id=f"shop-test-{uuid.uuid4().hex[:8]}",
            state_dir=tmp_path_factory.mktemp("chaos-state"),
        )
        with env:
            yield env


def checkout(shop: LocalEnvironment, customer: str, item: str = "mug", qty: int = 2) -> dict:
    order = {"customer": customer, "item": item, "qty": qty}
    status, placed = call("POST", shop.endpoint("web") + "/checkout", order)
    assert status == 200, placed
    return placed


def wait_for_status(shop: LocalEnvironment, order_id: str, wanted: str, within: float) -> dict:
    deadline = time.monotonic() + within
    while True:
        status, seen = call("GET", f"{shop.endpoint('web')}/orders/{order_id}")
        if (status == 200 and seen["status"] == wanted) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


# -- the shop without faults --------------------------------------------------------------------


@needs_stores
def test_checkout_is_confirmed_and_paid_exactly_once(shop: LocalEnvironment) -> None:
    placed = checkout(shop, "alice", "mug", 2)
    assert placed["status"] == "confirmed"
    status, seen = call("GET", f"{shop.endpoint('web')}/orders/{placed['order_id']}")
    assert status == 200
    assert (seen["status"], seen["amount_cents"], seen["customer"]) == ("confirmed", 2400, "alice")
    status, charge = call("GET", f"{shop.endpoint('payments')}/charges/{placed['order_id']}")
    assert (status, charge["id"], charge["amount_cents"]) == (200, seen["charge_id"], 2400)
    every_confirmed_order_paid_once(shop)
    no_payment_without_an_order(shop)


@needs_stores
def test_a_second_charge_with_the_same_key_returns_the_first(shop: LocalEnvironment) -> None:
    placed = checkout(shop, "bob")
    again = {"key": placed["order_id"], "amount_cents": 2400, "customer": "bob"}
    status, charge = call("POST", f"{shop.endpoint('payments')}/charge", again)
    assert status == 200 and charge["replayed"] is True
    status, _ = call("POST", f"{shop.endpoint('payments')}/charge", {**again, "amount_cents": 1})
    assert status == 409
    every_confirmed_order_paid_once(shop)


@needs_stores
def test_browse_fills_the_cache_then_reads_it(shop: LocalEnvironment) -> None:
    sources = [call("GET", shop.endpoint("web") + "/catalogue")[1]["source"] for _ in range(2)]
    assert sources[1] == "cache"
    status, body = call("GET", shop.endpoint("web") + "/catalogue")
    assert status == 200 and {item["id"] for item in body["items"]} >= {"tea", "mug"}


@needs_stores
def test_bad_orders_are_refused(shop: LocalEnvironment) -> None:
    status, body = call("POST", shop.endpoint("web") + "/checkout", {"customer": "c", "item": "x"})
    assert status == 400 and "unknown item" in body["error"]


@needs_stores
def test_an_order_left_pending_is_settled_once_by_the_reconciler(shop: LocalEnvironment) -> None:
    shop.lifecycle.stop("payments")
    try:
        placed = checkout(shop, "carol", "tea", 1)
    finally:
        shop.lifecycle.start("payments")
        shop.wait_healthy("payments")
    assert placed["status"] == "pending"
    seen = wait_for_status(shop, placed["order_id"], "confirmed", within=10.0)
    assert seen["status"] == "confirmed", seen
    pending_orders_get_settled(shop)
    every_confirmed_order_paid_once(shop)


@needs_stores
def test_invariants_fail_when_an_order_is_paid_twice(
    shop: LocalEnvironment, state_dir: Path
) -> None:
    placed = checkout(shop, "dave")
    ledger = state_dir / f"payments-{shop.address('payments')[1]}" / "charges.jsonl"
    lines = ledger.read_text().splitlines()
    first = next(json.loads(line) for line in lines if placed["order_id"] in line)
    duplicate = {**first, "id": "ch_duplicate0000000"}
    ledger.write_text("\n".join([*lines, json.dumps(duplicate)]) + "\n")
    try:
        with pytest.raises(InvariantViolated, match=f"{placed['order_id']}.*paid 2 times"):
            every_confirmed_order_paid_once(shop)
        orphan = {**first, "id": "ch_orphan", "key": "no-such-order"}
        ledger.write_text("\n".join([*lines, json.dumps(orphan)]) + "\n")
        with pytest.raises(InvariantViolated, match=r"ch_orphan .* has no order"):
            no_payment_without_an_order(shop)
    finally:
        ledger.write_text("\n".join(lines) + "\n")
    every_confirmed_order_paid_once(shop)


# -- the checkers on hand-made snapshots -------------------------------------------------------


def order(
    oid: str, status: str = "confirmed", charge: str | None = "c1", age: float = 1.0
) -> Order:
    return Order(oid, "eve", 500, status, charge, age)


def test_checkers_pass_on_consistent_books() -> None:
    charges = (Charge("c1", "o1", 500),)
    snap = Snapshot(charges, (order("o1"), order("o2", "pending", None)), charges)
    assert paid_exactly_once_problems(snap) == []
    assert orphan_payment_problems(snap) == []
    assert stuck_pending_problems(snap) == []


@pytest.mark.parametrize(
    ("orders", "charges", "problem"),
    [
        ((order("o1"),), (), "paid 0 times"),
        ((order("o1"),), (Charge("c1", "o1", 500), Charge("c2", "o1", 500)), "paid 2 times"),
        ((order("o1", "pending", None),), (Charge("a", "o1", 5), Charge("b", "o1", 5)), "paid 2"),
        ((order("o1"),), (Charge("c1", "o1", 499),), "for 499 cents"),
        ((order("o1", charge="c9"),), (Charge("c1", "o1", 500),), "holds c1"),
    ],
)
def test_paid_exactly_once_catches(
    orders: tuple[Order, ...], charges: tuple[Charge, ...], problem: str
) -> None:
    problems = paid_exactly_once_problems(Snapshot(charges, orders, charges))
    assert len(problems) == 1 and problem in problems[0], problems


def test_orphans_are_judged_on_charges_read_before_the_orders() -> None:
    late = Charge("c2", "o2", 500)  # charged after the orders were read: its order is not seen
    snap = Snapshot((Charge("c1", "zz", 5),), (order("o1"),), (Charge("c1", "o1", 500), late))
    assert orphan_payment_problems(snap) == ["charge c1 (5 cents, key zz) has no order"]


def test_stuck_pending_orders_are_reported() -> None:
    snap = Snapshot((), (order("o1", "pending", None, age=30.0),), ())
    assert stuck_pending_problems(snap) == ["order o1 (eve) still pending after 30.0s"]


# -- the two variants stay the same shop ---------------------------------------------------------


def test_resilient_files_differ_from_weak_ones_only_where_documented() -> None:
    weak = yaml.safe_load((SHOP / "chaos.yaml").read_text())
    strong = yaml.safe_load((SHOP / "chaos.resilient.yaml").read_text())
    assert (strong["name"], strong["environments"]) == (
        "shop-resilient",
        {"local": "local.resilient.yaml", "compose": "compose.resilient.yaml"},
    )
    assert strong["services"]["web"]["depends_on"] == ["orders"]
    assert weak["services"]["web"]["depends_on"] == ["orders", "redis"]
    for data in (weak, strong):
        del data["name"], data["environments"], data["services"]["web"]["depends_on"]
    assert weak == strong
    local = yaml.safe_load((SHOP / "local.yaml").read_text())["services"]
    local_strong = yaml.safe_load((SHOP / "local.resilient.yaml").read_text())["services"]
    for name, entry in local.items():
        flipped = {**entry.get("env", {}), **({"SHOP_RESILIENT": "1"} if "env" in entry else {})}
        assert local_strong[name] == {**entry, **({"env": flipped} if "env" in entry else {})}
    assert {n for n, e in local.items() if e.get("env", {}).get("SHOP_RESILIENT") == "0"} == {
        "payments",
        "orders",
        "web",
    }
