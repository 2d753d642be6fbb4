"""The shop's Python journeys (catalog `call:` form): what a synthetic customer does, attempt by attempt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaos.probes import JourneyContext, JourneyFailed

CATALOGUE = Path(__file__).parent / "services" / "items.json"  # what orders seeds its items from
ITEMS: tuple[str, ...] = tuple(item["id"] for item in json.loads(CATALOGUE.read_text()))
PLACED = ("confirmed", "pending")  # pending: accepted, payment settled later by the reconciler


def customer_name(customer: int) -> str:
    """The name synthetic customer `customer` orders under (the order-status journey reads it)."""
    return f"customer-{customer}"


def checkout(ctx: JourneyContext) -> dict[str, Any]:
    """Place an order through web and read it back; the customer must see it placed.

    A status other than confirmed/pending, an order that cannot be read back, or one that went
    back from confirmed to pending is a failed attempt of its own kind.
    """
    order = {
        "customer": customer_name(ctx.customer),
        "item": ITEMS[(ctx.customer + ctx.seq) % len(ITEMS)],
        "qty": 1 + ctx.seq % 3,
    }
    placed = ctx.http("POST", "web", "/checkout", json=order).json()
    status = placed.get("status")
    if status not in PLACED:
        raise JourneyFailed(f"order-{status}", f"checkout answered {placed!r}")
    seen = ctx.http("GET", "web", f"/orders/{placed['order_id']}").json()
    if seen.get("order_id") != placed["order_id"] or seen.get("status") not in PLACED:
        raise JourneyFailed("order-lost", f"placed {placed!r} but read back {seen!r}")
    if status == "confirmed" and seen["status"] != "confirmed":
        raise JourneyFailed("order-regressed", f"confirmed {placed!r}, read back {seen!r}")
    return {"order_id": placed["order_id"], "status": seen["status"]}
