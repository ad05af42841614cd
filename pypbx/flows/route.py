"""Routing rules, live: :func:`resolve` routes a live call through a route (the routes, their
rules and the pure evaluation are in :mod:`pypbx.routing`).
"""

from __future__ import annotations

import logging

from pypbx.call import Call, CallManager
from pypbx.logs import call_log
from pypbx.routing import (
    MAX_DEPTH,
    RoutingError,
    evaluate,
    gather_facts,
    get_route,
)

log = logging.getLogger(__name__)


async def resolve(cm: CallManager, s: Call, name: str) -> str | None:
    """Route a live call: evaluate route ``name`` (and any ``route:`` it leads to) for
    session ``s``; write a ``route`` call event per route; remember a sticky agent on the
    session (``s.route_prefer``, read by the queue call) and raise the call's queue priority
    to the rule's (``s.priority``, the urgent line). Returns a destination that is not a
    route, or None (no rule matched, unknown route, a loop)."""
    db = cm.db
    seen: list[str] = []
    while True:
        if name in seen or len(seen) >= MAX_DEPTH:
            await cm.event(
                s, "route", route=name, rule=None, destination=None, reason="route loop" if name in seen else "too deep"
            )
            call_log(log, s).warning("route %s: loop / too deep (%s)", name, " -> ".join(seen))
            return None
        seen.append(name)
        try:
            route = await get_route(db, name)
        except RoutingError:
            await cm.event(s, "route", route=name, rule=None, destination=None, reason="no such route")
            call_log(log, s).warning("no route %s", name)
            return None
        facts = await gather_facts(
            db, route, s.caller, acd=getattr(cm, "acd", None), ivr_choices=getattr(s, "ivr_choices", None) or ()
        )
        d = evaluate(route.rules, facts, route.tz)
        await cm.event(
            s,
            "route",
            route=name,
            rule=d.rule,
            destination=d.destination,
            prefer_agent=d.prefer_agent,
            priority=d.priority,
            known=facts["known"],
            last_agent=facts["last_agent"],
        )
        call_log(log, s).info("route %s: %s", name, d.trace[-1])
        if d.prefer_agent:
            s.route_prefer = (d.prefer_agent, d.prefer_for)
        s.priority = max(s.priority, d.priority)
        if d.destination is None or not d.destination.startswith("route:"):
            return d.destination
        name = d.destination.partition(":")[2]
