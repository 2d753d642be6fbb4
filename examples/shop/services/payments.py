"""A payment-provider stand-in: idempotent charges kept durably in an append-only JSON-lines file.

POST /charge {key, amount_cents, customer} charges once per idempotency key: a second charge with
the same key answers the first (200, "replayed": true), never a duplicate; the same key with
another amount is refused (409). GET /charges/{key} answers 404 when the key was never charged
(what the orders reconciler asks after a timeout); GET /charges lists every line of the file as
written, so a duplicate that got in by any other way shows up to the invariant checks.

Run `payments.py --reset` (the local environment's setup step) to start from an empty ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from common import BadRequest, JsonBody, Reply, route, serve, setup_logging, state_dir

log = setup_logging("payments")


class ChargeBook:
    """The charges, indexed by idempotency key; every new charge is fsynced before it is answered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._by_key = {charge["key"]: charge for charge in self.read_all()}
        log.info("loaded %d charges from %s", len(self._by_key), path)

    def read_all(self) -> list[dict[str, Any]]:
        """Every charge line in file order; a torn last line (a crash mid-write) is skipped."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        charges = []
        for number, line in enumerate(lines, start=1):
            try:
                charges.append(json.loads(line))
            except ValueError:
                log.warning("%s:%d is not a charge (torn write?): %r", self.path, number, line)
        return charges

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._by_key.get(key)

    def charge(self, key: str, amount_cents: int, customer: str) -> tuple[dict[str, Any], bool]:
        """(charge, created): the existing charge for `key`, or a new durable one."""
        with self._lock:
            existing = self._by_key.get(key)
            if existing is not None:
                if existing["amount_cents"] != amount_cents:
                    raise Conflict(
                        f"key {key!r} was charged {existing['amount_cents']} cents, "
                        f"not {amount_cents}: an idempotency key names one payment"
                    )
                return existing, False
            charge = {
                "id": f"ch_{uuid.uuid4().hex[:16]}",
                "key": key,
                "amount_cents": amount_cents,
                "customer": customer,
                "at": time.time(),
            }
            with self.path.open("a") as file:
                file.write(json.dumps(charge) + "\n")
                file.flush()
                os.fsync(file.fileno())
            self._by_key[key] = charge
            return charge, True


class Conflict(Exception):
    """An idempotency key reused for a different payment."""


def _charge_request(body: JsonBody) -> tuple[str, int, str]:
    key, amount, customer = body.get("key"), body.get("amount_cents"), body.get("customer", "")
    if not isinstance(key, str) or not key:
        raise BadRequest("'key' (the idempotency key, a non-empty string) is required")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadRequest(f"'amount_cents' must be a positive integer, got {amount!r}")
    return key, amount, str(customer)


def routes(book: ChargeBook) -> list:
    """The payments API over one charge book."""

    def health(_match: Any, _body: JsonBody) -> Reply:
        return Reply(200, {"status": "ok"})

    def charge(_match: Any, body: JsonBody) -> Reply:
        key, amount, customer = _charge_request(body)
        try:
            made, created = book.charge(key, amount, customer)
        except Conflict as err:
            return Reply(409, {"error": str(err)})
        if created:
            log.info("charged %s: %d cents for %s (%s)", key, amount, customer, made["id"])
        return Reply(201 if created else 200, {**made, "replayed": not created})

    def one(match: Any, _body: JsonBody) -> Reply:
        found = book.get(match["key"])
        if found is None:
            return Reply(404, {"error": f"no charge with key {match['key']!r}"})
        return Reply(200, found)

    def every(_match: Any, _body: JsonBody) -> Reply:
        return Reply(200, {"charges": book.read_all()})

    return [
        route("GET", "/health", health),
        route("POST", "/charge", charge),
        route("GET", "/charges/(?P<key>[^/]+)", one),
        route("GET", "/charges", every),
    ]


def main(argv: list[str]) -> None:
    data = Path(os.environ.get("DATA_DIR") or state_dir("payments"))
    if argv[1:] == ["--reset"]:
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        log.info("reset the charge ledger in %s", data)
        return
    server = serve("payments", routes(ChargeBook(data / "charges.jsonl")), log)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
