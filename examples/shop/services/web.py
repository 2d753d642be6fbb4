"""The shop's HTTP front: browse the catalogue (through the Redis cache), check out, read orders.

Deliberate weakness (c), switched off by SHOP_RESILIENT=1 (see ../README.md): the cache is treated
as a hard dependency — when Redis cannot be reached, GET /catalogue answers 503 and /health fails,
although orders could have answered. Resilient: a cache error falls back to orders, and the cache
is not part of /health (Redis is then a soft dependency, as chaos.resilient.yaml declares).
A cache *miss* reads orders and fills the cache in both variants.
"""

from __future__ import annotations

import json
from typing import Any

import redis
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
from redis.backoff import NoBackoff
from redis.retry import Retry

log = setup_logging("web")

ORDERS_TIMEOUT = 5.0  # seconds for one call to orders
HEALTH_TIMEOUT = 0.2  # seconds for the dependency checks of /health
CACHE_TIMEOUT = 0.5  # seconds for one Redis command (connect or read)
CACHE_TTL = 5  # seconds a cached catalogue is served before orders is asked again
CATALOGUE_KEY = "shop:catalogue"


class Shop:
    """The front's use cases over orders and the cache."""

    def __init__(self, orders_url: str, cache: redis.Redis, *, fallback: bool) -> None:
        self.orders_url = orders_url.rstrip("/")
        self.cache = cache
        self.fallback = fallback  # False: weakness (c)

    def catalogue(self) -> Reply:
        try:
            cached = self.cache.get(CATALOGUE_KEY)
        except redis.RedisError as err:
            if not self.fallback:
                return Reply(503, {"error": f"catalogue cache unavailable: {err}"})
            log.warning("cache unavailable, reading the catalogue from orders: %s", err)
            return Reply(200, {**self._orders("GET", "/catalogue").body, "source": "orders"})
        if cached is not None:
            return Reply(200, {**json.loads(cached), "source": "cache"})
        fresh = self._orders("GET", "/catalogue").body
        try:
            self.cache.set(CATALOGUE_KEY, json.dumps(fresh), ex=CACHE_TTL)
        except redis.RedisError as err:
            log.warning("could not fill the cache: %s", err)
        return Reply(200, {**fresh, "source": "orders"})

    def checkout(self, body: JsonBody) -> Reply:
        customer, item, qty = body.get("customer"), body.get("item"), body.get("qty", 1)
        if not isinstance(customer, str) or not isinstance(item, str):
            raise BadRequest("send {customer: str, item: str, qty: int}")
        order = {"customer": customer, "item": item, "qty": qty}
        reply = self._orders("POST", "/orders", order, expect=(200, 400))
        if reply.status != 200:
            return reply
        placed = reply.body
        result = {"order_id": placed["order_id"], "status": placed["status"]}
        log.info("checkout %s for %s: %s", result["order_id"], customer, result["status"])
        return Reply(200, result)

    def order(self, order_id: str) -> Reply:
        return self._orders("GET", f"/orders/{order_id}", expect=(200, 404))

    def orders_of(self, customer: str) -> Reply:
        return self._orders("GET", f"/customers/{customer}/orders")

    def health(self) -> Reply:
        """Ready when orders is ready, and (weak variant) the cache answers."""
        problems = []
        try:
            call("GET", f"{self.orders_url}/health", timeout=HEALTH_TIMEOUT)
        except Upstream as err:
            problems.append(f"orders: {err}")
        if not self.fallback:
            try:
                self.cache.ping()
            except redis.RedisError as err:
                problems.append(f"cache: {err}")
        return Reply(503, {"problems": problems}) if problems else Reply(200, {"status": "ok"})

    def _orders(
        self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = ()
    ) -> Reply:
        return call(method, self.orders_url + path, body, timeout=ORDERS_TIMEOUT, expect=expect)


def routes(shop: Shop) -> list:
    return [
        route("GET", "/health", lambda _m, _b: shop.health()),
        route("GET", "/catalogue", lambda _m, _b: shop.catalogue()),
        route("POST", "/checkout", lambda _m, body: shop.checkout(body)),
        route("GET", "/orders/(?P<id>[^/]+)", lambda match, _b: shop.order(match["id"])),
        route(
            "GET",
            "/customers/(?P<customer>[^/]+)/orders",
            lambda match, _b: shop.orders_of(match["customer"]),
        ),
    ]


def main() -> None:
    cache = redis.Redis.from_url(
        env_str("REDIS_URL"),
        socket_timeout=CACHE_TIMEOUT,
        socket_connect_timeout=CACHE_TIMEOUT,
        retry=Retry(NoBackoff(), 0),  # one try per command: this front decides what a miss means
    )
    shop = Shop(env_str("ORDERS_URL"), cache, fallback=resilient())
    serve("web", routes(shop), log).serve_forever()


if __name__ == "__main__":
    main()
