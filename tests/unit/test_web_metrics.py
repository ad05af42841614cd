"""/metrics (pypbx.web.metrics): the Prometheus text format, read back with the reference
parser (prometheus_client), and who may scrape it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pypbx.web import accounts as A
from pypbx.web.metrics import Metric, render
from tests.unit.test_web import cheap_hashes, run  # noqa: F401 - cheap_hashes: the autouse fixture


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_render_is_the_text_format() -> None:
    text = render(
        [
            Metric("pypbx_queue_waiting", "gauge", "Callers waiting.").add(2, queue='front "desk"\\1'),
            Metric("pypbx_calls_total", "counter", "Calls.").add(5, disposition="answered").add(None, disposition="x"),
            Metric("pypbx_up", "gauge", "Up.").add(1),
            Metric("pypbx_ratio", "gauge", "A ratio.").add(0.875),
        ]
    )
    assert "# TYPE pypbx_calls_total counter\n" in text and "# HELP pypbx_up Up.\n" in text
    assert parsed(text) == {
        ("pypbx_queue_waiting", (("queue", 'front "desk"\\1'),)): 2,
        ("pypbx_calls_total", (("disposition", "answered"),)): 5,
        ("pypbx_up", ()): 1,
        ("pypbx_ratio", ()): 0.875,
    }


def test_metrics_need_a_token_or_a_supervisor_and_never_an_agent(make_config: Callable[..., Path]) -> None:
    async def body(client: TestClient, ctx: Any) -> None:
        assert (await client.get("/metrics")).status == 401
        _, tv = await A.add_token(ctx.db, "wallboard", name="prometheus")
        _, agent = await A.add_token(ctx.db, "agent", name="alice's", agent_id="alice")
        resp = await client.get("/metrics", headers={"Authorization": f"Bearer {tv}"})
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        got = parsed(await resp.text())
        # no running PBX here: the books' and the outbox's figures only
        assert got[("pypbx_outbox_notifications", (("status", "pending"),))] == 0
        assert ("pypbx_up", ()) not in got
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {agent}"})).status == 403

    run(make_config, body)
