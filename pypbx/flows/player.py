"""What the flows that talk to a caller share: the prompt files and a playlist player.

* :func:`prompt`: a prompt's file, the clinic's own recording if imported
  (``pypbx prompts import``), else the shipped one (:mod:`pypbx.prompts`);
* :class:`Player`: a playlist on one leg of a call, then music on hold (looped), played
  through the call layer's ``play`` / ``stop_play``. The queue call and the IVR use it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from media.client import WorkerError
from pypbx import prompts

if TYPE_CHECKING:
    from pypbx.call.manager import CallManager
    from pypbx.call.session import Call

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "ivr_prompts"
DEFAULT_MOH = PROMPTS_DIR / "moh" / "default.wav"


def prompt(lang: str, pid: str, base: Path = PROMPTS_DIR) -> str:
    """The clinic's own recording if imported (``pypbx prompts import``), else shipped."""
    return prompts.resolve(lang, pid, base)


class PlayerHost(Protocol):
    """The flow a :class:`Player` plays for: its call, the call manager, and the music
    played after the playlist (None: nothing)."""

    @property
    def s(self) -> Call: ...

    @property
    def cm(self) -> CallManager: ...

    @property
    def moh_file(self) -> str | None: ...


class Player:
    """A playlist on one leg, then music on hold (looped)."""

    def __init__(self, call: PlayerHost, leg: str | None) -> None:
        self.call = call
        self.leg = leg
        self.head: list[str] = []  # greeting / prompts that must be heard
        self.tail: list[str] = []  # the latest announcement (a newer one replaces it)
        self.current: str | None = None
        self.moh = False
        self.stopped = False

    async def _play(self, f: str, loop: bool = False) -> bool:
        try:
            await self.call.cm.play(self.call.s, self.leg, f, loop=loop)
            return True
        except WorkerError as exc:
            log.info("play %s on %s failed: %s", f, self.leg, exc)
            return False

    async def next(self) -> None:
        if self.stopped:
            return
        while self.head or self.tail:
            f = (self.head or self.tail).pop(0)
            if await self._play(f):
                self.current, self.moh = f, False
                return
        self.current = None
        moh = self.call.moh_file
        if moh and await self._play(moh, loop=True):
            self.moh = True

    async def say(self, files: list[str], replace: bool = True) -> None:
        """Play ``files`` now if only music is on, else after what is playing."""
        if self.stopped:
            return
        if replace:
            self.tail = list(files)
        else:
            self.head.extend(files)
        if self.current is None:
            await self.next()

    async def interrupt(self, files: list[str]) -> None:
        """Drop everything queued and play ``files`` now."""
        self.head, self.tail = list(files), []
        self.current = None
        self.stopped = False
        await self.next()

    async def finished(self, f: str) -> bool:
        """A playback ended; True if it was ours (the next one started)."""
        if self.current is None or f != self.current:
            return False
        self.current = None
        await self.next()
        return True

    async def stop(self) -> None:
        self.stopped = True
        self.head, self.tail, self.current = [], [], None
        self.moh = False
        await self.call.cm.stop_play(self.call.s, self.leg, quiet=True)
