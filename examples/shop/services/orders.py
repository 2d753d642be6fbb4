"""Orders: keeps orders in PostgreSQL, charges them at payments, and settles what was left pending.

An order is written as `pending` (and committed) before payments is asked to charge it with the
order id as idempotency key; it becomes `confirmed` once the charge is known. When the charge
call fails or times out, the order stays pending and the customer is told so; the reconciliation
loop later asks payments about that key (GET /charges/{key}), charges only if absent, and
confirms — so every order is paid exactly once, however the call before it ended.

Deliberate weaknesses, switched off by SHOP_RESILIENT=1 (see ../README.md):
  (a) the payments call has no timeout: a hung or slow payments provider hangs checkout;
      resilient: 1 s timeout, the order is left pending for the reconciler.
  (b) the database connections are opened once at startup and never replaced: after a database
      restart (or a network cut) every query fails until orders itself is restarted;
      resilient: a broken connection is dropped and a new one opened on the next use.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import psycopg2.extras
from common import (
    BadRequest,
    JsonBody,
    Reply,
    Upstream,
    call,
    env_str,
    resilient,
    route,
    serve,
    setup_logging,
)

log = setup_logging("orders")
T = TypeVar("T")

POOL_SIZE = 4
POOL_WAIT = 2.0  # seconds a request waits for a free connection
CONNECT_TIMEOUT = 2  # seconds (libpq wants an integer)
PAYMENTS_TIMEOUT = 1.0  # resilient variant only; the weak one waits forever
RECONCILE_EVERY = 0.5  # seconds between two passes of the reconciler
PENDING_GRACE = 2.0  # a pending order younger than this may still be settled by its checkout
RECONCILE_BATCH = 20  # orders settled per pass at most
ITEMS = json.loads((Path(__file__).with_name("items.json")).read_text())

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id text PRIMARY KEY,
    name text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE IF NOT EXISTS orders (
    id text PRIMARY KEY,
    customer text NOT NULL,
    item text NOT NULL REFERENCES items (id),
    qty integer NOT NULL CHECK (qty BETWEEN 1 AND 100),
    amount_cents integer NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'confirmed')),
    charge_id text,
    settled_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    settled_at timestamptz
);
CREATE INDEX IF NOT EXISTS orders_pending ON orders (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer, created_at);
"""


class DatabaseDown(Exception):
    """The orders database could not answer (connection lost, refused, or pool exhausted)."""


class Database:
    """A small connection pool; whether a broken connection is replaced is weakness (b)."""

    def __init__(self, url: str, *, reconnect: bool, size: int = POOL_SIZE) -> None:
        self.url = url
        self.reconnect = reconnect
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        for _ in range(size):
            self._idle.put(None)  # a slot whose connection is opened on first use
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def open_all(self) -> None:
        """Open every connection now (the weak variant's startup: fail fast, never again)."""
        slots = [self._idle.get_nowait() for _ in range(self._idle.qsize())]
        try:
            slots = [conn or self._open() for conn in slots]
        finally:
            for conn in slots:
                self._idle.put(conn)

    def transaction(self, work: Callable[[Any], T]) -> T:
        """Run `work(cursor)` in one transaction (commit on return, rollback on error)."""
        try:
            conn = self._idle.get(timeout=POOL_WAIT)
        except queue.Empty:
            raise DatabaseDown(f"all {POOL_SIZE} connections busy for {POOL_WAIT}s") from None
        try:
            if conn is None:
                conn = self._open()
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                return work(cursor)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
            if self.reconnect and conn is not None:
                conn.close()
                conn = None  # the next user of this slot opens a fresh connection
            raise DatabaseDown(f"database {self.url}: {type(err).__name__}: {err}".strip()) from err
        finally:
            self._idle.put(conn)

    def _open(self) -> Any:
        conn = psycopg2.connect(
            self.url, connect_timeout=CONNECT_TIMEOUT, application_name="shop-orders"
        )
        with self._migrate_lock:
            if not self._migrated:
                self._migrate(conn)
                self._migrated = True
        return conn

    @staticmethod
    def _migrate(conn: Any) -> None:
        with conn, conn.cursor() as cursor:
            cursor.execute(SCHEMA)
            for item in ITEMS:
                cursor.execute(
                    "INSERT INTO items (id, name, price_cents) VALUES (%s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    (item["id"], item["name"], item["price_cents"]),
                )
        log.info("schema ready, %d items", len(ITEMS))


class Payments:
    """The payments provider, reached through the PAYMENTS_URL edge."""

    def __init__(self, url: str, *, timeout: float | None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout  # None: wait forever — weakness (a)

    def charge(self, order: dict[str, Any]) -> dict[str, Any]:
        body = {
            "key": order["id"],
            "amount_cents": order["amount_cents"],
            "customer": order["customer"],
        }
        return call("POST", f"{self.url}/charge", body, timeout=self.timeout).body

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The charge made with idempotency key `key`, None when there is none."""
        reply = call("GET", f"{self.url}/charges/{key}", timeout=self.timeout, expect=(200, 404))
        return reply.body if reply.status == 200 else None


class Orders:
    """The order book: placing, reading and settling orders."""

    def __init__(self, db: Database, payments: Payments) -> None:
        self.db = db
        self.payments = payments

    def place(self, customer: str, item: str, qty: int) -> dict[str, Any]:
        """Write the order as pending, then try to settle it at once."""
        order_id = uuid.uuid4().hex

        def insert(cursor: Any) -> dict[str, Any]:
            cursor.execute("SELECT price_cents FROM items WHERE id = %s", (item,))
            row = cursor.fetchone()
            if row is None:
                raise BadRequest(f"unknown item {item!r}; see GET /catalogue")
            cursor.execute(
                "INSERT INTO orders (id, customer, item, qty, amount_cents, status)"
                " VALUES (%s, %s, %s, %s, %s, 'pending') RETURNING *",
                (order_id, customer, item, qty, row["price_cents"] * qty),
            )
            return dict(cursor.fetchone())

        order = self.db.transaction(insert)
        status = self.settle(order, by="checkout")
        return {"order_id": order_id, "status": status, "amount_cents": order["amount_cents"]}

    def settle(self, order: dict[str, Any], *, by: str) -> str:
        """Charge (idempotently) and confirm; "pending" when payments could not be reached."""
        try:
            charge = self.payments.charge(order)
        except Upstream as err:
            log.warning("order %s left pending (%s): %s", order["id"], by, err)
            return "pending"
        self._confirm(order["id"], charge["id"], by)
        return "confirmed"

    def reconcile_once(self) -> int:
        """Settle pending orders older than the grace period; the number settled."""

        def stale(cursor: Any) -> list[dict[str, Any]]:
            cursor.execute(
                "SELECT * FROM orders WHERE status = 'pending'"
                " AND created_at < now() - make_interval(secs => %s)"
                " ORDER BY created_at LIMIT %s",
                (PENDING_GRACE, RECONCILE_BATCH),
            )
            return [dict(row) for row in cursor.fetchall()]

        settled = 0
        for order in self.db.transaction(stale):
            existing = self.payments.lookup(order["id"])
            charge = existing or self.payments.charge(order)
            self._confirm(order["id"], charge["id"], "reconciler")
            log.info(
                "reconciled order %s: %s charge %s",
                order["id"],
                "found" if existing else "made",
                charge["id"],
            )
            settled += 1
        return settled

    def get(self, order_id: str) -> dict[str, Any] | None:
        def read(cursor: Any) -> dict[str, Any] | None:
            cursor.execute("SELECT * FROM orders WHERE id = %s", (order_id,))
            row = cursor.fetchone()
            return None if row is None else _public(row)

        return self.db.transaction(read)

    def of_customer(self, customer: str, limit: int = 5) -> list[dict[str, Any]]:
        def read(cursor: Any) -> list[dict[str, Any]]:
            cursor.execute(
                "SELECT * FROM orders WHERE customer = %s ORDER BY created_at DESC LIMIT %s",
                (customer, limit),
            )
            return [_public(row) for row in cursor.fetchall()]

        return self.db.transaction(read)

    def catalogue(self) -> list[dict[str, Any]]:
        def read(cursor: Any) -> list[dict[str, Any]]:
            cursor.execute("SELECT id, name, price_cents FROM items ORDER BY id")
            return [dict(row) for row in cursor.fetchall()]

        return self.db.transaction(read)

    def healthy(self) -> bool:
        return self.db.transaction(lambda cursor: cursor.execute("SELECT 1") is None)

    def _confirm(self, order_id: str, charge_id: str, by: str) -> None:
        def update(cursor: Any) -> None:
            cursor.execute(
                "UPDATE orders SET status = 'confirmed', charge_id = %s, settled_by = %s,"
                " settled_at = now() WHERE id = %s AND status = 'pending'",
                (charge_id, by, order_id),
            )

        self.db.transaction(update)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("customer", "item", "qty", "amount_cents", "status", "charge_id")
    return {"order_id": row["id"], **{key: row[key] for key in keys}}


def reconcile_forever(orders: Orders, stop: threading.Event) -> None:
    """The reconciliation loop: one bounded pass every RECONCILE_EVERY s until the process ends."""
    while not stop.wait(RECONCILE_EVERY):
        try:
            orders.reconcile_once()
        except (DatabaseDown, Upstream) as err:
            log.warning("reconciliation pass failed, retrying in %ss: %s", RECONCILE_EVERY, err)


def _order_request(body: JsonBody) -> tuple[str, str, int]:
    customer, item, qty = body.get("customer"), body.get("item"), body.get("qty", 1)
    if not isinstance(customer, str) or not customer:
        raise BadRequest("'customer' (a non-empty string) is required")
    if not isinstance(item, str) or not item:
        raise BadRequest("'item' (an item id from GET /catalogue) is required")
    if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= 100:
        raise BadRequest(f"'qty' must be an integer from 1 to 100, got {qty!r}")
    return customer, item, qty


def routes(orders: Orders) -> list:
    """The orders API; a database failure answers 503 with the reason."""

    def guarded(handler: Callable[..., Reply]) -> Callable[..., Reply]:
        def run(match: Any, body: JsonBody) -> Reply:
            try:
                return handler(match, body)
            except DatabaseDown as err:
                return Reply(503, {"error": str(err)})

        return run

    def health(_match: Any, _body: JsonBody) -> Reply:
        return Reply(200 if orders.healthy() else 503, {"status": "ok"})

    def place(_match: Any, body: JsonBody) -> Reply:
        return Reply(200, orders.place(*_order_request(body)))

    def one(match: Any, _body: JsonBody) -> Reply:
        found = orders.get(match["id"])
        return Reply(200, found) if found else Reply(404, {"error": f"no order {match['id']!r}"})

    def of_customer(match: Any, _body: JsonBody) -> Reply:
        return Reply(200, {"orders": orders.of_customer(match["customer"])})

    def catalogue(_match: Any, _body: JsonBody) -> Reply:
        return Reply(200, {"items": orders.catalogue()})

    table = [
        ("GET", "/health", health),
        ("POST", "/orders", place),
        ("GET", "/orders/(?P<id>[0-9a-f]{1,64})", one),
        ("GET", "/customers/(?P<customer>[^/]+)/orders", of_customer),
        ("GET", "/catalogue", catalogue),
    ]
    return [route(method, path, guarded(handler)) for method, path, handler in table]


def main() -> None:
    strong = resilient()
    db = Database(env_str("DATABASE_URL"), reconnect=strong)
    payments = Payments(env_str("PAYMENTS_URL"), timeout=PAYMENTS_TIMEOUT if strong else None)
    if not strong:
        try:
            db.open_all()
        except psycopg2.Error as err:
            sys.exit(f"cannot reach the database at startup: {err}")
    orders = Orders(db, payments)
    server = serve("orders", routes(orders), log)
    stop = threading.Event()
    threading.Thread(target=reconcile_forever, args=(orders, stop), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
