"""Who is calling, asked of the clinic's own system (its MIS/CRM) while the call arrives.

``[crm] lookup_url`` is a URL template (``https://mis.local/api/patient?phone={e164}``;
also ``{national}`` and ``{digits}``) answered with JSON::

    {"name": "Marie Dupont", "patient_id": "P-1042", "flags": ["vip"],
     "language": "fr", "agent": "alice"}

(every field optional; 404 or ``{}`` = not a patient). The answer is written into the local
callers table (:func:`pypbx.callers.remember`) so everything that already asks the table —
known/new smart routing, the caller kind in the books, the screen pop's name, call-backs — sees
the CRM's patient; and on the call: ``agent`` → the queue prefers that agent for
``prefer_seconds`` (sticky agent), a ``vip``/``urgent`` flag → the urgent line's priority,
``language`` → the prompts' language in the IVR and the queue.

The lookup never delays a call past ``timeout_ms`` (default 300 ms): on a timeout, an HTTP
error or a malformed answer the local table answers alone and one warning is logged (at most
once a minute). Answers, including "not found", are cached for ``cache_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from pypbx.numbers import display, e164, is_e164

if TYPE_CHECKING:
    import aiohttp

    from pypbx.config import CrmConfig

log = logging.getLogger(__name__)

#: flags that put a caller on the urgent line
URGENT_FLAGS = frozenset({"vip", "urgent"})
#: cached answers kept at most (oldest dropped first)
CACHE_MAX = 10_000
_WARN_EVERY = 60.0
_LANG_RE = re.compile(r"[a-z]{2,3}")  # a prompt language directory name, nothing else
_AGENT_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")  # pypbx.acdstore.AGENT_ID_RE


@dataclass(frozen=True)
class CrmAnswer:
    """What the clinic's system knows about a number (``found`` False: not a patient)."""

    found: bool
    name: str = ""
    patient_id: str = ""
    flags: frozenset[str] = frozenset()
    language: str = ""
    agent: str = ""

    @property
    def urgent(self) -> bool:
        return bool(self.flags & URGENT_FLAGS)


NOT_FOUND = CrmAnswer(False)


def _text(v: object, limit: int) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    return " ".join(v.split())[:limit] if isinstance(v, str) else ""


def parse_answer(data: object) -> CrmAnswer:
    """The answer from the CRM's decoded JSON (an object; anything else is not found).
    Unknown fields are ignored, wrong types dropped, strings trimmed."""
    if not isinstance(data, Mapping):
        return NOT_FOUND
    flags_raw = data.get("flags") or ()
    if isinstance(flags_raw, str):
        flags_raw = flags_raw.replace(";", ",").split(",")
    flags = frozenset(f.strip().lower() for f in flags_raw if isinstance(f, str) and f.strip())
    ans = CrmAnswer(
        True,
        name=_text(data.get("name"), 80),
        patient_id=_text(data.get("patient_id"), 64),
        flags=flags,
        language=lang if _LANG_RE.fullmatch(lang := _text(data.get("language"), 8).lower()) else "",
        agent=agent if _AGENT_RE.fullmatch(agent := _text(data.get("agent"), 32).lower()) else "",
    )
    return ans if (ans.name or ans.patient_id or ans.flags or ans.agent or ans.language) else NOT_FOUND


def lookup_url(template: str, number: str, region: str) -> str:
    """The template filled for an E.164 ``number`` (each value URL-quoted)."""
    values = {
        "e164": number,
        "national": display(number, region).replace(" ", ""),
        "digits": number.lstrip("+"),
    }
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


class CrmLookup:
    """The lookup with its cache; one per running PBX (closed with :meth:`close`)."""

    def __init__(self, cfg: CrmConfig, region: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.region = region
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, CrmAnswer]] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None
        self._warned = -_WARN_EVERY
        self.failures = 0  # lookups that fell back to the local table (timeouts, errors)

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.lookup_url)

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "pypbx"}
        if self.cfg.token:
            h["Authorization"] = f"Bearer {self.cfg.token}"
        if self.cfg.header:
            name, _, value = self.cfg.header.partition(":")
            h[name.strip()] = value.strip()
        return h

    def cached(self, number: str) -> CrmAnswer | None:
        hit = self._cache.get(number)
        if hit is None:
            return None
        if hit[0] <= self.clock():
            del self._cache[number]
            return None
        return hit[1]

    def _store(self, number: str, ans: CrmAnswer) -> None:
        self._cache[number] = (self.clock() + self.cfg.cache_seconds, ans)
        self._cache.move_to_end(number)
        while len(self._cache) > CACHE_MAX:
            self._cache.popitem(last=False)

    async def lookup(self, number: str) -> CrmAnswer | None:
        """The CRM's answer for a caller (None: no CRM, not a phone number, or the CRM did
        not answer in time — the local table decides then)."""
        if not self.enabled:
            return None
        n = e164(number, self.region)
        if not is_e164(n):
            return None
        hit = self.cached(n)
        if hit is not None:
            return hit
        try:
            async with asyncio.timeout(self.cfg.timeout_ms / 1000):
                ans = await self._fetch(n)
        except TimeoutError:
            self._failed(n, f"no answer within {self.cfg.timeout_ms} ms")
            return None
        except Exception as exc:  # an unreachable or broken CRM never fails a call
            self._failed(n, str(exc) or type(exc).__name__)
            return None
        self._store(n, ans)
        return ans

    async def _fetch(self, number: str) -> CrmAnswer:
        import aiohttp  # the web desk's HTTP library; imported only when a CRM is configured

        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers())
        url = lookup_url(self.cfg.lookup_url, number, self.region)
        async with self._session.get(url, allow_redirects=False) as resp:
            if resp.status == 404:
                return NOT_FOUND
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            data = await resp.json(content_type=None)
        return parse_answer(data)

    def _failed(self, number: str, why: str) -> None:
        self.failures += 1
        now = self.clock()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            log.warning("CRM lookup for %s failed (%s): the local callers table answers", number, why)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
