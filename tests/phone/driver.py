"""Drive a tests/phone/pjphone.py process from a test: send commands, wait for events."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

PJPHONE = Path(__file__).with_name("pjphone.py")


class PjPhone:
    def __init__(self, name: str = "phone", log_dir: Path | None = None) -> None:
        self.name = name
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.seen: list[dict] = []
        self._replies: dict[int, dict] = {}
        self._cv = threading.Condition()
        self._id = 0
        stderr = open(log_dir / f"{name}.stderr", "wb") if log_dir else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, str(PJPHONE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr,
                                     cwd=str(PJPHONE.parents[2]))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_event(lambda e: e.get("event") == "ready", 20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                if "reply" in msg:
                    self._replies[msg["reply"]] = msg
                else:
                    self.seen.append(msg)
                self._cv.notify_all()

    def cmd(self, cmd: str, timeout: float = 10.0, **args: Any) -> dict:
        self._id += 1
        rid = self._id
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()
        with self._cv:
            if not self._cv.wait_for(lambda: rid in self._replies, timeout):
                raise AssertionError(f"{self.name}: no reply to {cmd}")
            reply = self._replies.pop(rid)
        if "error" in reply:
            raise AssertionError(f"{self.name}: {cmd} failed: {reply['error']}")
        return reply

    def wait_event(self, pred: Callable[[dict], bool], timeout: float = 10.0, what: str = "") -> dict:
        with self._cv:
            start = 0
            deadline = time.monotonic() + timeout
            while True:
                for e in self.seen[start:]:
                    if pred(e):
                        return e
                start = len(self.seen)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: timed out waiting for {what or 'event'}; saw {self.seen[-10:]}")
                self._cv.wait(left)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
