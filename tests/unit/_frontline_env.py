"""Shared set-up for the front-line unit tests: CallManager + AcdLive + FrontLine over media.fake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from media import protocol as P
from media.fake import FakePool
from pypbx import acdstore as S
from pypbx.acdlive import AcdLive
from pypbx.call import CallManager
from pypbx.calllog import CallLog
from pypbx.db import open_db
from pypbx.extensions import add_extension
from pypbx.flows.player import PROMPTS_DIR
from pypbx.frontline import FrontLine
from sip.message import parse_message
from sip.transaction import Addr

PHONE = Addr("UDP", "192.0.2.10", 5070)
EXTS = ("1001", "1002", "1003", "1009")


def invite(to: str, *, frm: str = "1009", call_id: str = "c1"):
    lines = [
        f"INVITE sip:{to}@pbx.example SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKx1",
        "Max-Forwards: 70",
        f"From: <sip:{frm}@pbx.example>;tag=ft1",
        f"To: <sip:{to}@pbx.example>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        "Contact: <sip:1009@192.0.2.10:5070>",
    ]
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


async def settle(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0.01)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t
        self.auto = False

    def __call__(self) -> float:
        if self.auto:
            self.t += 1.0
        return self.t


def pr(pid: str, lang: str = "en") -> str:
    return str(PROMPTS_DIR / lang / f"{pid}.wav")


class Env:
    def __init__(self, tmp: Path, record: bool = True, registered=lambda n: True, ring_time: float = 60.0) -> None:
        self.tmp = tmp
        self.record = record
        self.registered = registered
        self.ring_time = ring_time

    async def __aenter__(self) -> Env:
        self._db_cm = open_db(self.tmp / "pbx.db")
        self.db = await self._db_cm.__aenter__()
        for e in EXTS:
            await add_extension(self.db, e, password="secret-pass-123")
        await S.add_queue(self.db, "front", strategy="longest_idle", ring_timeout=15, wrap_up=0)
        await S.add_agent(self.db, "alice", "Alice")
        self.clock = Clock()
        self.pool = FakePool(auto_answer_originate=False)
        self.cm = CallManager(
            pool=self.pool,
            calllog=CallLog(self.db, self.clock),
            db=self.db,
            data_dir=self.tmp,
            front_door="127.0.0.1:5060",
            is_extension=lambda n: n in EXTS,
            is_registered=self.registered,
            record=self.record,
            clock=self.clock,
            ring_time=self.ring_time,
        )
        self.cm.route_to_extension = lambda req: "to-extension"  # type: ignore[assignment,return-value]
        self.live = AcdLive(self.db, callmgr=self.cm, contacts=lambda ext: [], clock=self.clock, reload_interval=0.05)
        self.fl = FrontLine(self.db, self.cm, self.tmp, survey_timeout=0.2)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.cm.run(self.stop))
        await asyncio.sleep(0)
        await self.live.start()
        self.cm.acd = self.live
        self.cm.frontline = self.fl
        return self

    async def __aexit__(self, *exc) -> None:
        await self.live.close()
        self.clock.auto = True
        self.stop.set()
        await asyncio.wait_for(self.task, 15)
        await self._db_cm.__aexit__(None, None, None)

    async def call(self, to: str, frm: str = "1009", call_id: str = "c1"):
        self.cm.route(invite(to, frm=frm, call_id=call_id), PHONE, frm)
        w = self.pool.busy[-1]
        w.inject(P.Incoming(leg="in-1", from_uri=f"<sip:{frm}@pbx>", to_uri=f"<sip:{to}@pbx>", call_id=call_id))
        await settle()
        return w, self.cm.sessions[w]

    async def cdr(self, rec_id: str) -> dict:
        return await self.db.get_call_row(rec_id)

    async def events(self, rec_id: str) -> list[tuple[str, dict]]:
        return [(r["kind"], json.loads(r["detail"] or "{}")) for r in await self.db.call_event_rows(rec_id)]


def plays(w) -> list[str]:
    return [c.file for c in w.commands if isinstance(c, P.Play)]


def originates(w) -> list[P.Originate]:
    return [c for c in w.commands if isinstance(c, P.Originate)]


async def press(w, digits: str, leg: str = "in-1") -> None:
    for d in digits:
        w.inject(P.Dtmf(leg=leg, digit=d))
        await settle(3)
    await settle()


async def finish_all_playback(w, leg: str = "in-1", limit: int = 20) -> list[str]:
    seen = []
    while leg in w.playing and limit:
        seen.append(w.playing[leg])
        w.finish_playback(leg)
        await settle()
        limit -= 1
    return seen
