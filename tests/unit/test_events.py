"""pypbx.events: the one event stream (ordering, gap-free seq, slow subscribers, resume)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from acd.model import EventKind, QueueEvent
from pypbx.calllog import CallLog
from pypbx.db import open_db
from pypbx.events import (
    EVENT_TYPES,
    AgentChange,
    AgentStateChanged,
    CallEnded,
    CallOffered,
    CallRinging,
    CallStep,
    Direction,
    Disposition,
    EventBus,
    Gap,
    Journal,
    OverflowReason,
    QueueOverflowed,
    SubscriberDropped,
    TrunkUp,
    from_queue_event,
    read_journal,
)


def run(coro):
    return asyncio.run(coro)


def ring(n: int) -> CallRinging:
    return CallRinging(call_id=f"c{n}", callee=str(n))


def test_seq_is_gap_free_and_stamped_with_the_clock():
    t = [100.0]
    bus = EventBus(clock=lambda: t[0])
    out = []
    for i in range(5):
        t[0] += 1
        out.append(bus.publish(ring(i)))
    assert [e.seq for e in out] == [1, 2, 3, 4, 5]
    assert [e.at for e in out] == [101.0, 102.0, 103.0, 104.0, 105.0]
    assert [e.call_id for e in out] == ["c0", "c1", "c2", "c3", "c4"]


def test_events_are_frozen_and_typed():
    ev = EventBus().publish(CallEnded(call_id="x", disposition=Disposition.BUSY, cause="486"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.disposition = Disposition.ANSWERED  # type: ignore[misc]
    d = json.loads(ev.to_json())
    assert d["event"] == "call.ended" and d["disposition"] == "busy" and d["seq"] == 1
    assert EVENT_TYPES["call.ended"] is CallEnded


def test_live_subscribers_get_every_event_in_order():
    async def go():
        bus = EventBus()
        a, b = bus.subscribe(), bus.subscribe()
        for i in range(50):
            bus.publish(ring(i))
            if i % 7 == 0:
                await asyncio.sleep(0)
        got_a = [a.get_nowait().seq for _ in range(50)]
        got_b = [(await b.get()).seq for _ in range(50)]
        return got_a, got_b, a.get_nowait()

    got_a, got_b, rest = run(go())
    assert got_a == list(range(1, 51)) and got_b == list(range(1, 51))
    assert rest is None


def test_a_subscriber_that_never_reads_is_dropped_and_does_not_delay_emit():
    async def go():
        bus = EventBus(queue_size=10)
        written = []

        async def books(ev):
            written.append(ev.seq)

        bus.add_writer(books)
        stuck = bus.subscribe()  # never reads
        reader = bus.subscribe(maxsize=1000)
        for i in range(100):
            # emit completes each time: nothing waits for the stuck subscriber
            ev = await asyncio.wait_for(bus.emit(ring(i)), 1.0)
            assert ev.seq == i + 1
        items = list(stuck.items)
        return written, items, stuck.dropped, bus.subscribers, len(reader.items)

    written, items, dropped, nsubs, nread = run(go())
    assert written == list(range(1, 101))  # the durable writer saw every event
    assert dropped and nsubs == 1  # the stuck one is gone, the reader stays
    assert [e.seq for e in items[:-1]] == list(range(1, 11))
    assert items[-1] == SubscriberDropped(last_seq=10)
    assert nread == 100


def test_a_dropped_subscriber_can_resume_from_its_last_seq():
    async def go():
        bus = EventBus(queue_size=3)
        sub = bus.subscribe()
        for i in range(10):
            bus.publish(ring(i))
        got = [x async for x in sub]  # ends after the notice
        again = bus.subscribe(since=got[-1].last_seq)
        return got, [again.get_nowait().seq for _ in range(7)]

    got, resumed = run(go())
    assert [e.seq for e in got[:-1]] == [1, 2, 3] and got[-1] == SubscriberDropped(3)
    assert resumed == [4, 5, 6, 7, 8, 9, 10]


def test_resume_from_n_gets_n_plus_one_onward_then_live():
    async def go():
        bus = EventBus()
        for i in range(20):
            bus.publish(ring(i))
        sub = bus.subscribe(since=12)
        bus.publish(ring(99))
        return [e.seq for e in list(sub.items)]

    assert run(go()) == list(range(13, 22))


def test_resume_older_than_the_buffer_gets_an_explicit_gap():
    async def go():
        bus = EventBus(buffer=5)
        for i in range(20):
            bus.publish(ring(i))
        sub = bus.subscribe(since=3)
        gap_replay, events = bus.replay(3)
        return list(sub.items), gap_replay, events

    items, gap, events = run(go())
    assert items[0] == Gap(first=4, last=15)
    assert [e.seq for e in items[1:]] == [16, 17, 18, 19, 20]
    assert gap == Gap(4, 15) and [e.seq for e in events] == [16, 17, 18, 19, 20]


def test_resume_from_another_run_is_a_gap_from_the_start():
    bus = EventBus(buffer=100, run="now")
    for i in range(5):
        bus.publish(ring(i))
    gap, events = bus.replay(3, run="before")
    assert gap is None and [e.seq for e in events] == [1, 2, 3, 4, 5]
    bus2 = EventBus(buffer=2, run="now")
    for i in range(5):
        bus2.publish(ring(i))
    gap, events = bus2.replay(3, run="before")
    assert gap == Gap(1, 3) and [e.seq for e in events] == [4, 5]


def test_resume_from_the_latest_is_empty_and_no_gap():
    bus = EventBus()
    assert bus.replay(0) == (None, [])
    bus.publish(ring(1))
    assert bus.replay(1) == (None, [])


def test_writer_failure_reaches_the_emitter_but_the_event_is_in_the_stream():
    async def go():
        bus = EventBus()
        sub = bus.subscribe()

        async def broken(ev):
            raise RuntimeError("disk full")

        bus.add_writer(broken, CallRinging)
        with pytest.raises(RuntimeError):
            await bus.emit(ring(1))
        ev = await bus.emit(TrunkUp(trunk="t"))  # not for that writer
        return [e.seq for e in sub.items], ev.seq

    assert run(go()) == ([1, 2], 2)


def test_a_failing_sink_is_logged_not_raised():
    bus = EventBus()

    def bad(ev):
        raise ValueError("nope")

    bus.add_sink(bad)
    assert bus.publish(ring(1)).seq == 1


def test_journal_writes_one_json_line_per_event(tmp_path):
    bus = EventBus(run="r1")
    j = Journal(tmp_path / "ev" / "events.jsonl", bus.run)
    bus.add_sink(j)
    bus.publish(CallOffered(call_id="a", direction=Direction.INBOUND, caller="1", callee="2"))
    bus.publish(CallEnded(call_id="a", disposition=Disposition.NO_ANSWER))
    j.close()
    rows = read_journal(tmp_path / "ev" / "events.jsonl")
    assert [(r["seq"], r["event"], r["run"]) for r in rows] == [(1, "call.offered", "r1"), (2, "call.ended", "r1")]
    assert rows[0]["direction"] == "inbound" and rows[1]["disposition"] == "no_answer"


def test_queue_events_become_typed_domain_events():
    ov = from_queue_event(QueueEvent(1.0, EventKind.TIMEOUT, "sales", "c1", data={"wait": 30}))
    assert isinstance(ov, QueueOverflowed) and ov.reason is OverflowReason.TIMEOUT and ov.data["wait"] == 30
    ag = from_queue_event(QueueEvent(1.0, EventKind.PAUSE, None, None, agent_id="alice", data={"reason": "lunch"}))
    assert isinstance(ag, AgentStateChanged) and ag.change is AgentChange.PAUSE and ag.agent == "alice"


def test_calllog_emits_the_call_events_and_the_books_follow(tmp_path):
    async def go():
        async with open_db(tmp_path / "db.sqlite") as db:
            bus = EventBus()
            sub = bus.subscribe()
            log = CallLog(db, bus=bus)
            rec = await log.offer(direction=Direction.INTERNAL, caller_number="1001", callee_number="1002")
            await log.event(rec, "ringing", callee="1002")
            await log.event(rec, "dtmf", digit="5")
            await log.answered(rec)
            await log.event(rec, "held", side="caller")
            await log.end(rec, Disposition.ANSWERED, side="caller", cause="BYE")
            rows = await db.call_event_rows(rec.id)
            row = await db.get_call_row(rec.id)
        return [type(e).__name__ for e in sub.items], [e.seq for e in sub.items], rows, row, list(sub.items)

    names, seqs, rows, row, items = run(go())
    assert names == ["CallOffered", "CallRinging", "CallStep", "CallAnswered", "CallHeld", "CallEnded"]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert [r["kind"] for r in rows] == ["offered", "ringing", "dtmf", "answered", "held", "ended"]
    assert isinstance(items[2], CallStep) and items[2].step == "dtmf"
    assert items[-1].disposition is Disposition.ANSWERED and row["disposition"] == "answered"


def test_a_never_reading_subscriber_does_not_delay_calls(tmp_path):
    async def go():
        async with open_db(tmp_path / "db.sqlite") as db:
            bus = EventBus(queue_size=2)
            stuck = bus.subscribe()  # never reads
            log = CallLog(db, bus=bus)
            for _ in range(10):
                rec = await asyncio.wait_for(
                    log.offer(direction=Direction.INTERNAL, caller_number="1", callee_number="2"), 5.0
                )
                await asyncio.wait_for(log.end(rec, Disposition.NO_ANSWER), 5.0)
            acc = await log.accounting()
        return acc, stuck.dropped, list(stuck.items)[-1]

    acc, dropped, last = run(go())
    assert acc["offered"] == 10 and acc["dispositions"]["no_answer"] == 10
    assert dropped and last == SubscriberDropped(last_seq=2)


def test_the_integration_invariant_catches_a_broken_stream(tmp_path):
    from tests.integration.harness import check_event_stream

    async def go():
        async with open_db(tmp_path / "db.sqlite") as db:
            bus = EventBus(run="r")
            j = Journal(tmp_path / "events.jsonl", bus.run)
            bus.add_sink(j)
            log = CallLog(db, bus=bus)
            a = await log.offer(direction=Direction.INTERNAL, caller_number="1", callee_number="2")
            await log.answered(a)
            await log.end(a, Disposition.ANSWERED)
            j.close()

    run(go())
    journal, dbp = tmp_path / "events.jsonl", tmp_path / "db.sqlite"
    assert check_event_stream(journal, dbp) == 1
    good = journal.read_text().splitlines()
    cases = {
        "gap": [good[0], good[2]],  # seq 2 missing
        "no end": [good[0], good[1]],
        "wrong disposition": [*good[:2], good[2].replace('"disposition": "answered"', '"disposition": "busy"')],
    }
    for lines in cases.values():
        journal.write_text("\n".join(lines) + "\n")
        with pytest.raises(AssertionError):
            check_event_stream(journal, dbp)


class _ApiThread:
    """A real local API server (pypbx.localapi) answering ``events`` from a bus, in a thread."""

    def __init__(self, path, bus: EventBus) -> None:
        import threading

        from pypbx.localapi import LocalApiServer

        self.loop = asyncio.new_event_loop()
        self.server = LocalApiServer(path, {"events": bus.api})
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_cli_events_since_n_prints_n_plus_one_onward(tmp_config, invoke_cli):
    from pypbx.config import load_config

    cfg = load_config(tmp_config)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    bus = EventBus(run="r1")
    for i in range(5):
        bus.publish(ring(i))
    with _ApiThread(cfg.socket_path, bus):
        res = invoke_cli("events", "--since", "2", "--json", "--config", str(tmp_config))
        text = invoke_cli("events", "--config", str(tmp_config))
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["seq"] for r in rows] == [3, 4, 5] and {r["run"] for r in rows} == {"r1"}
    assert rows[0]["event"] == "call.ringing" and rows[0]["call_id"] == "c2"
    assert text.exit_code == 0 and len(text.output.splitlines()) == 5 and "call.ringing" in text.output


def test_cli_events_without_a_running_pbx_is_one_clear_line(tmp_config, invoke_cli):
    res = invoke_cli("events", "--config", str(tmp_config))
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: pypbx is not running (no socket at ")
