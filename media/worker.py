"""A media worker: one pjsua2 Endpoint hosting the legs of one call session.

Run as ``python -m media.worker --sip-port N --rtp-start P --rtp-count K --trusted
127.0.0.1:5060``. Commands arrive as JSON lines on stdin, replies and events leave as
JSON lines on stdout (see :mod:`media.protocol`), logs go to stderr.

Threading: pjsua2 runs with no worker threads (``threadCnt=0``, ``mainThreadOnly``); the
main loop pumps ``libHandleEvents`` with a timeout (long when idle, short with legs up)
and polls stdin in between, so every pjsua2 callback runs in this thread. The only
exception is ``AudioMediaPlayer.onEof2`` (pjmedia's event thread): it only puts into a
``queue.SimpleQueue`` that the loop drains.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

import pjsua2 as pj

from media import protocol as P

log = logging.getLogger("media.worker")

PJ_ETOOMANY = 70010
PUMP_MS = 100  # libHandleEvents timeout; commands and EOFs wake it at once
WAKE = b"\r\n\r\n"  # a SIP keep-alive: pjsip drops it silently, but it wakes select()
RTP_CHECK_S = 1.0  # how often the legs' RTP receive counters are read
RECORDER_SETTLE_S = 0.3  # pjmedia finalises the WAV header shortly after release


class _LogWriter(pj.LogWriter):  # type: ignore[misc]  # pjsua2 (SWIG) has no stubs: its classes are Any
    _LEVELS: ClassVar[dict[int, int]] = {
        0: logging.CRITICAL,
        1: logging.ERROR,
        2: logging.WARNING,
        3: logging.INFO,
        4: logging.DEBUG,
        5: logging.DEBUG,
        6: logging.DEBUG,
    }

    def write(self, entry: Any) -> None:
        try:
            logging.getLogger("pjsua2").log(self._LEVELS.get(entry.level, logging.DEBUG), entry.msg.rstrip())
        except Exception:  # never let an exception cross into C
            pass


class _Player(pj.AudioMediaPlayer):  # type: ignore[misc]  # pjsua2 (SWIG) has no stubs: its classes are Any
    def __init__(self, eof_queue: queue.SimpleQueue[tuple[str, int]], leg: str, serial: int, wake: Any):
        super().__init__()
        self._q = eof_queue
        self._wake = wake
        self.leg = leg
        self.serial = serial
        self.loop = False
        self.file = ""

    def onEof2(self) -> None:  # pjmedia event thread: hand over, touch nothing else
        if not self.loop:
            self._q.put((self.leg, self.serial))
            self._wake()


class _Call(pj.Call):  # type: ignore[misc]  # pjsua2 (SWIG) has no stubs: its classes are Any
    def __init__(self, worker: Worker, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID, leg: str = ""):
        super().__init__(acc, call_id)
        self.worker = worker
        self.leg = leg

    def onCallState(self, prm: Any) -> None:
        try:
            self.worker.on_call_state(self)
        except Exception:
            log.exception("onCallState")

    def onCallMediaState(self, prm: Any) -> None:
        try:
            self.worker.on_media_state(self)
        except Exception:
            log.exception("onCallMediaState")

    def onDtmfDigit(self, prm: Any) -> None:
        try:
            self.worker.emit(P.Dtmf(leg=self.leg, digit=prm.digit))
        except Exception:
            log.exception("onDtmfDigit")

    def onCallRxOffer(self, prm: Any) -> None:
        try:
            self.worker.on_rx_offer(self, prm.offer.wholeSdp)
        except Exception:
            log.exception("onCallRxOffer")

    def onCallTransferRequest(self, prm: Any) -> None:
        try:
            self.worker.on_transfer_request(self, prm)
        except Exception:
            log.exception("onCallTransferRequest")
            prm.statusCode = 500

    def onCallReplaceRequest(self, prm: Any) -> None:
        try:
            self.worker.on_replace_request(self, prm)
        except Exception:
            log.exception("onCallReplaceRequest")
            prm.statusCode = 500

    def onCallReplaced(self, prm: Any) -> None:
        try:
            self.worker.on_replaced(self, prm)
        except Exception:
            log.exception("onCallReplaced")

    def onCallTsxState(self, prm: Any) -> None:
        try:
            self.worker.on_tsx_state(self, prm)
        except Exception:
            log.exception("onCallTsxState")


class _Account(pj.Account):  # type: ignore[misc]  # pjsua2 (SWIG) has no stubs: its classes are Any
    def __init__(self, worker: Worker):
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self.worker.on_incoming(self, prm)
        except Exception:
            log.exception("onIncomingCall")


@dataclass
class Leg:
    id: str
    call: _Call
    incoming: bool
    media_up: bool = False
    ringing_sent: bool = False
    answered_sent: bool = False
    ended: bool = False
    player: _Player | None = None
    bridged: set[str] = field(default_factory=set)
    offer_hold: bool | None = None  # what the phone's last SDP offer asked for
    held: bool = False  # what we last reported (held/unheld events)
    pending_since: float | None = None  # a transfer leg pjsua has yet to place
    challenged: bool = False  # our INVITE got a 401/407 (pjsip answers it if it can)
    rx_pkts: int = -1  # RTP packets received so far (media stats), -1: not read yet
    rx_at: float = 0.0  # monotonic time rx_pkts last grew (or media came up / hold changed)
    rx_timed_out: bool = False  # media_timeout sent for the current silence


def sdp_hold(sdp: str) -> bool:
    """True if an SDP offer puts the audio stream on hold (RFC 3264 §8.4: a=sendonly or
    a=inactive; RFC 2543 style: c=0.0.0.0), at session or audio-media level."""
    level_dir: dict[str, str] = {}
    conn: dict[str, str] = {}
    section = "session"
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            section = "audio" if line.startswith("m=audio") else "other"
        elif line.startswith("c=") and section in ("session", "audio"):
            conn[section] = line[2:].split()[-1] if line[2:].split() else ""
        elif line.startswith("a=") and section in ("session", "audio"):
            attr = line[2:].split(":", 1)[0].lower()
            if attr in ("sendonly", "inactive", "recvonly", "sendrecv"):
                level_dir[section] = attr
    direction = level_dir.get("audio", level_dir.get("session", "sendrecv"))
    addr = conn.get("audio", conn.get("session", ""))
    return direction in ("sendonly", "inactive") or addr in ("0.0.0.0", "::")


def split_refer_to(uri: str) -> tuple[str, str | None]:
    """(target URI without headers, unescaped Replaces value or None) of a Refer-To URI."""
    text = uri.strip()
    if text.startswith("<") and ">" in text:
        text = text[1 : text.index(">")]
    if "?" not in text:
        return text, None
    base, hdrs = text.split("?", 1)
    replaces = None
    for part in hdrs.split("&"):
        name, _, value = part.partition("=")
        if name.lower() == "replaces":
            replaces = unquote(value)
    return base, replaces


def parse_headers(whole_msg: str) -> tuple[str, dict[str, str]]:
    """Request line and {header-name: value} (first occurrence, compact forms expanded)."""
    compact = {
        "f": "From",
        "t": "To",
        "i": "Call-ID",
        "m": "Contact",
        "v": "Via",
        "l": "Content-Length",
        "c": "Content-Type",
        "k": "Supported",
        "s": "Subject",
    }
    head = whole_msg.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    head = re.sub(r"\n[ \t]+", " ", head)  # unfold
    lines = head.split("\n")
    out: dict[str, str] = {}
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip()
        name = compact.get(name.lower(), name)
        out.setdefault(name, value.strip())
    return lines[0] if lines else "", out


_PROTO_OUT: Any = None
_CRED_HEADER = re.compile(r"\r\n(?:proxy-)?authorization[ \t]*:", re.I)


def _protocol_out() -> Any:
    """The protocol channel: the original stdout, moved to a private fd.

    fd 1 is then pointed at stderr, so nothing pjlib prints to the console (it logs to
    stdout before our LogWriter is installed) can corrupt the JSON lines.
    """
    global _PROTO_OUT
    if _PROTO_OUT is None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        _PROTO_OUT = os.fdopen(fd, "wb", buffering=0)
        sys.stdout = sys.stderr
    return _PROTO_OUT


class Worker:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.trusted = set(args.trusted or [])
        self.legs: dict[str, Leg] = {}
        self.dying: list[_Call] = []  # calls to release once disconnected
        self.release_queue: list[Any] = []  # pjsua2 objects to drop outside callbacks
        self.recorders: dict[str, tuple[pj.AudioMediaRecorder, str]] = {}
        self.pending_record_events: list[tuple[float, P.RecordStopped]] = []
        self.eof_queue: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self.player_serial = 0
        self.next_in = 0
        self.next_xfer = 0
        self.running = True
        self.started = time.monotonic()
        self.rtp_checked = self.started
        self.capacity = 0
        self.out = _protocol_out()
        self.cmd_queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._wake_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._wake_addr = (args.sip_addr, args.sip_port)

    def wake(self) -> None:
        """Make a blocked libHandleEvents return now (safe from any thread: no pjsua2)."""
        try:
            self._wake_sock.sendto(WAKE, self._wake_addr)
        except OSError:
            pass

    def _stdin_reader(self) -> None:
        """Thread: stdin lines -> cmd_queue (never touches pjsua2)."""
        buf = b""
        while True:
            try:
                chunk = os.read(0, 65536)  # raw fd: no buffered-reader lock at exit
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.cmd_queue.put(line)
            self.wake()
        self.cmd_queue.put(None)
        self.wake()

    # ------------------------------------------------------------ output
    def emit(self, msg: Any) -> None:
        self.out.write(P.encode(msg))

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        a = self.args
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = a.max_calls
        cfg.uaConfig.userAgent = "pypbx-media"
        cfg.medConfig.clockRate = a.clock_rate
        cfg.medConfig.sndClockRate = a.clock_rate
        cfg.medConfig.channelCount = 1
        cfg.medConfig.sndAutoCloseTime = -1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        self.logwriter = _LogWriter()
        cfg.logConfig.writer = self.logwriter
        cfg.logConfig.level = a.pj_log_level
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.decor = 0
        cfg.logConfig.msgLogging = a.pj_log_level >= 4
        self.logwriter.__disown__()  # pjsua2 owns it; a Python-owned writer segfaults at exit
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()

        tcfg = pj.TransportConfig()
        tcfg.port = a.sip_port
        tcfg.boundAddress = a.sip_addr
        self.tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.libStart()
        self._set_codecs()

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:media@{a.sip_addr}:{a.sip_port}"
        acfg.sipConfig.transportId = self.tid
        mt = acfg.mediaConfig.transportConfig
        mt.port = a.rtp_start
        mt.portRange = a.rtp_count
        mt.boundAddress = a.media_addr
        if a.public_addr:
            mt.publicAddress = a.public_addr
        acfg.mediaConfig.transportConfig = mt
        # SIP session timers (RFC 4028): used when the phone supports them; a session not
        # refreshed in time is ended by pjsua (the leg's ended event says so)
        if a.session_expires > 0:
            acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
            acfg.callConfig.timerSessExpiresSec = a.session_expires
            acfg.callConfig.timerMinSESec = 90  # RFC 4028 minimum (pjsip refuses less)
        else:
            acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
        # The capacity probe dials a local sink directly, so it runs on an account
        # without the outbound proxy (through the front door it would hang until the
        # probe's calls time out and occupy every call slot).
        probe_acc = _Account(self)
        probe_acc.create(acfg, True)
        self.acc = probe_acc
        probe = self._probe_capacity()
        probe_acc.shutdown()
        if a.proxy:
            acfg.sipConfig.proxies.append(a.proxy)
        self.acc = _Account(self)
        self.acc.create(acfg, True)
        self.acfg = acfg
        self.default_id = acfg.idUri
        self._probe_acc = probe_acc  # released with the others before libDestroy
        self.capacity = min(probe, max(1, a.rtp_count // 2))
        self.emit(
            P.Ready(
                capacity=self.capacity,
                sip_port=a.sip_port,
                rtp_range=(a.rtp_start, a.rtp_start + a.rtp_count),
                pid=os.getpid(),
            )
        )

    def _set_codecs(self) -> None:
        prio = {"PCMU/8000": 255, "PCMA/8000": 254, "G722/16000": 253}
        for ci in self.ep.codecEnum2():
            cid = ci.codecId
            want = next((v for k, v in prio.items() if cid.startswith(k)), 0)
            try:
                self.ep.codecSetPriority(cid, want)
            except pj.Error as exc:
                log.warning("codec %s: %s", cid, exc.info())

    def _probe_capacity(self) -> int:
        """Open calls towards a local sink until pjsua refuses (PJ_ETOOMANY)."""
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((self.args.sip_addr, 0))
        sink.setblocking(False)
        uri = f"sip:probe@{self.args.sip_addr}:{sink.getsockname()[1]}"
        calls: list[_Call] = []
        limit = self.args.max_calls
        try:
            while len(calls) < limit:
                c = _Call(self, self.acc, leg="")
                try:
                    c.makeCall(uri, pj.CallOpParam(True))
                except pj.Error as exc:
                    self.release_queue.append(c)
                    if exc.status != PJ_ETOOMANY:
                        log.warning("capacity probe stopped: %s", exc.info())
                    break
                calls.append(c)
            cap = len(calls)
            # answer every probe INVITE with 480 from the sink until all calls are gone
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                self.ep.libHandleEvents(5)
                while True:
                    try:
                        data, addr = sink.recvfrom(65535)
                    except BlockingIOError:
                        break
                    text = data.decode("utf-8", "replace")
                    if not text.startswith("INVITE "):
                        continue
                    _, hdrs = parse_headers(text)
                    resp = "SIP/2.0 480 Probe\r\n" + "".join(
                        f"{h}: {hdrs[h]}\r\n" for h in ("Via", "From", "To", "Call-ID", "CSeq") if h in hdrs
                    )
                    resp = resp.replace("To: " + hdrs.get("To", ""), "To: " + hdrs.get("To", "") + ";tag=probe", 1)
                    sink.sendto((resp + "Content-Length: 0\r\n\r\n").encode(), addr)
                if all(not c.isActive() for c in calls):
                    break
            for c in calls:
                if c.isActive():
                    log.warning("capacity probe: call still active after 5 s")
        finally:
            sink.close()
        self.release_queue.extend(calls)
        self._drain_release()
        log.info("capacity probe: %d calls", cap)
        return cap

    def run(self) -> int:
        threading.Thread(target=self._stdin_reader, name="stdin", daemon=True).start()
        while self.running:
            self.ep.libHandleEvents(PUMP_MS)
            self._drain_eof()
            self._drain_release()
            self._flush_record_events()
            self._check_pending_transfers()
            self._check_rtp()
            if not self.legs and self.acfg.idUri != self.default_id:
                self._set_identity(None)  # the session is over: back to the worker's own
            while self.running:
                try:
                    line = self.cmd_queue.get_nowait()
                except queue.Empty:
                    break
                if line is None:  # core went away: shut down cleanly
                    log.info("stdin closed: shutting down")
                    self.running = False
                elif line.strip():
                    self._handle_line(line)
        self.stop()
        return 0

    def stop(self) -> None:
        try:
            self.ep.hangupAllCalls()
        except pj.Error:
            pass
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(leg.call.isActive() for leg in self.legs.values()):
            self.ep.libHandleEvents(10)
        for leg in list(self.legs.values()):
            self._stop_player(leg)
        for name in list(self.recorders):
            self._stop_recorder(name, "shutdown")
        self._drain_eof()
        self.release_queue.extend(leg.call for leg in self.legs.values())
        self.release_queue.extend(self.dying)
        self.legs.clear()
        self.dying.clear()
        self._drain_release()
        self.ep.libHandleEvents(10)
        del self.acc
        del self._probe_acc
        time.sleep(RECORDER_SETTLE_S)
        for _, ev in self.pending_record_events:
            self.emit(ev)
        self.pending_record_events.clear()
        self.ep.libDestroy()
        del self.ep

    # ------------------------------------------------------------ RTP inactivity
    def _check_rtp(self) -> None:
        """Every RTP_CHECK_S: a leg whose phone sent no RTP for ``--rtp-timeout`` seconds
        (answered, media up, not on hold) is reported once (``media_timeout``)."""
        limit = self.args.rtp_timeout
        now = time.monotonic()
        if limit <= 0 or now - self.rtp_checked < RTP_CHECK_S:
            return
        self.rtp_checked = now
        for leg in list(self.legs.values()):
            if leg.ended or not leg.answered_sent or not leg.media_up or leg.held or leg.offer_hold:
                leg.rx_at = now
                continue
            pkts = self._rx_packets(leg)
            if pkts is None:
                continue
            if pkts != leg.rx_pkts:
                leg.rx_pkts = pkts
                leg.rx_at = now
                leg.rx_timed_out = False
            elif not leg.rx_timed_out and now - leg.rx_at >= limit:
                leg.rx_timed_out = True
                log.warning("leg %s: no RTP for %.0f s", leg.id, now - leg.rx_at)
                self.emit(P.MediaTimeout(leg=leg.id, seconds=round(now - leg.rx_at, 1)))

    @staticmethod
    def _rx_packets(leg: Leg) -> int | None:
        """RTP packets received on the leg's audio stream (pjmedia's RTCP receive stats)."""
        try:
            ci = leg.call.getInfo()
            for idx, m in enumerate(ci.media):
                if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status in (
                    pj.PJSUA_CALL_MEDIA_ACTIVE,
                    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
                ):
                    return int(leg.call.getStreamStat(idx).rtcp.rxStat.pkt)
        except pj.Error:
            return None
        return None

    # ------------------------------------------------------------ helpers
    def _drain_release(self) -> None:
        while self.release_queue:
            obj = self.release_queue.pop()
            del obj

    def _drain_eof(self) -> None:
        while True:
            try:
                leg_id, serial = self.eof_queue.get_nowait()
            except queue.Empty:
                return
            leg = self.legs.get(leg_id)
            if leg and leg.player is not None and leg.player.serial == serial:
                f = leg.player.file
                self._stop_player(leg)
                self.emit(P.PlaybackFinished(leg=leg_id, file=f))

    def _flush_record_events(self) -> None:
        if not self.pending_record_events:
            return
        now = time.monotonic()
        keep = []
        for t, ev in self.pending_record_events:
            if t <= now:
                self.emit(ev)
            else:
                keep.append((t, ev))
        self.pending_record_events = keep

    def _leg(self, leg_id: str) -> Leg:
        leg = self.legs.get(leg_id)
        if leg is None or leg.ended:
            raise LookupError(f"no such leg: {leg_id}")
        return leg

    def _media(self, leg_id: str) -> pj.AudioMedia:
        leg = self._leg(leg_id)
        if not leg.media_up:
            raise LookupError(f"leg {leg_id} has no active media")
        return leg.call.getAudioMedia(-1)

    def _stop_player(self, leg: Leg) -> None:
        p = leg.player
        if p is None:
            return
        leg.player = None
        try:
            if leg.media_up and not leg.ended:
                p.stopTransmit(leg.call.getAudioMedia(-1))
        except pj.Error:
            pass
        self.release_queue.append(p)

    def _stop_recorder(self, leg_id: str, reason: str) -> None:
        rec, path = self.recorders.pop(leg_id)
        leg = self.legs.get(leg_id)
        try:
            if leg and leg.media_up and not leg.ended:
                leg.call.getAudioMedia(-1).stopTransmit(rec)
        except pj.Error:
            pass
        self.release_queue.append(rec)
        self.pending_record_events.append(
            (time.monotonic() + RECORDER_SETTLE_S, P.RecordStopped(leg=leg_id, path=path, reason=reason))
        )

    # ------------------------------------------------------------ pjsua2 callbacks
    def on_incoming(self, acc: _Account, prm: Any) -> None:
        src = prm.rdata.srcAddress
        if src not in self.trusted:
            log.warning("INVITE from untrusted %s rejected", src)
            c = _Call(self, acc, prm.callId, leg="")
            op = pj.CallOpParam()
            op.statusCode = 403
            op.reason = "Forbidden"
            c.answer(op)
            self.dying.append(c)
            return
        self.next_in += 1
        leg_id = f"in-{self.next_in}"
        c = _Call(self, acc, prm.callId, leg=leg_id)
        self.legs[leg_id] = Leg(id=leg_id, call=c, incoming=True)
        _, hdrs = parse_headers(prm.rdata.wholeMsg)
        ci = c.getInfo()
        self.emit(
            P.Incoming(
                leg=leg_id,
                from_uri=ci.remoteUri,
                to_uri=ci.localUri,
                call_id=ci.callIdString,
                headers={k: v for k, v in hdrs.items() if k.lower() not in ("via", "content-length")},
            )
        )

    def on_call_state(self, call: _Call) -> None:
        ci = call.getInfo()
        leg = self.legs.get(call.leg)
        if leg is None or leg.call is not call:
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and call in self.dying:
                self.dying.remove(call)
                self.release_queue.append(call)
            return
        if ci.state == pj.PJSIP_INV_STATE_EARLY and not leg.incoming and not leg.ringing_sent:
            leg.ringing_sent = True
            self.emit(P.Ringing(leg=leg.id))
        elif ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.answered_sent:
            leg.answered_sent = True
            self.emit(P.Answered(leg=leg.id, call_id=ci.callIdString))
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._end_leg(leg, ci.lastStatusCode, ci.lastReason)

    def on_tsx_state(self, call: _Call, prm: Any) -> None:
        """Notice that pjsip answered a 401/407 to our INVITE: pjsua reports no state for
        the challenge itself, but the new INVITE transaction it starts carries our
        credentials (Authorization / Proxy-Authorization, RFC 3261 §22.2/§22.3). A final
        401/407/403 after that means the credentials were refused (``ended.challenged``)."""
        leg = self.legs.get(call.leg)
        if leg is None or leg.incoming or leg.challenged or leg.answered_sent:
            return
        ev = prm.e
        if ev.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = ev.body.tsxState.tsx
        if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INVITE" or tsx.statusCode:
            return
        head = tsx.lastTx.wholeMsg.split("\r\n\r\n", 1)[0]
        if _CRED_HEADER.search(head):
            leg.challenged = True
            log.info("leg %s: INVITE challenged, re-sent with credentials", leg.id)

    def _end_leg(self, leg: Leg, code: int, reason: str) -> None:
        if leg.ended:
            return
        self._stop_player(leg)
        if leg.id in self.recorders:
            self._stop_recorder(leg.id, "leg_ended")
        for other in leg.bridged:
            o = self.legs.get(other)
            if o:
                o.bridged.discard(leg.id)
        leg.ended = True
        leg.media_up = False
        del self.legs[leg.id]
        self.release_queue.append(leg.call)
        self.emit(P.Ended(leg=leg.id, cause_code=int(code), reason=reason, challenged=leg.challenged))

    def on_media_state(self, call: _Call) -> None:
        leg = self.legs.get(call.leg)
        if leg is None:
            return
        ci = call.getInfo()
        up = any(
            m.type == pj.PJMEDIA_TYPE_AUDIO
            and m.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
            for m in ci.media
        )
        leg.media_up = up
        leg.rx_at = time.monotonic()  # a (re-)negotiated stream: its silence starts now
        leg.rx_pkts = -1
        remote_hold = any(
            m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD for m in ci.media
        )
        held = leg.offer_hold if leg.offer_hold is not None else remote_hold
        if held != leg.held and ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.held = held
            self.emit(P.Held(leg=leg.id) if held else P.Unheld(leg=leg.id))
        if up:
            # (re-)establish connections on every media update: a re-INVITE may recreate
            # the stream; connecting an already connected pair is a no-op in pjmedia
            am = call.getAudioMedia(-1)
            if leg.player is not None:
                leg.player.startTransmit(am)
            if leg.id in self.recorders:
                am.startTransmit(self.recorders[leg.id][0])
            for other in leg.bridged:
                o = self.legs.get(other)
                if o and o.media_up:
                    om = o.call.getAudioMedia(-1)
                    am.startTransmit(om)
                    om.startTransmit(am)

    def on_rx_offer(self, call: _Call, sdp: str) -> None:
        """A (re-)INVITE's offer: remember whether it puts us on hold; the held/unheld
        event follows in onCallMediaState, once the answer is sent and media updated."""
        leg = self.legs.get(call.leg)
        if leg is not None:
            leg.offer_hold = sdp_hold(sdp)

    def on_transfer_request(self, call: _Call, prm: Any) -> None:
        """REFER on a leg. pjsua2 cannot accept a REFER without placing the new call
        itself (the NOTIFYs to the transferor follow that call), so the worker accepts it
        (202), gives pjsua a Call object of its own as the new leg (``xfer-<n>``, via the
        account's outbound proxy = the front door) and tells the core, which bridges the
        new leg with the remaining party when it answers and hangs up the transferor."""
        leg = self.legs.get(call.leg)
        if leg is None or leg.ended:
            prm.statusCode = 481
            return
        if len(self.legs) >= self.capacity:
            log.warning("REFER on %s refused: worker at capacity", leg.id)
            prm.statusCode = 503
            return
        target, replaces = split_refer_to(prm.dstUri)
        self._set_identity(self._remaining_party(leg))
        self.next_xfer += 1
        new_id = f"xfer-{self.next_xfer}"
        newc = _Call(self, self.acc, leg=new_id)
        self.legs[new_id] = Leg(id=new_id, call=newc, incoming=False, pending_since=time.monotonic())
        prm.newCall = newc
        prm.statusCode = 202
        log.info("REFER on %s to %s (replaces %s): new leg %s", leg.id, target, replaces, new_id)
        self.emit(P.TransferRequested(leg=leg.id, target=target, replaces=replaces, new_leg=new_id))

    def _remaining_party(self, transferor: Leg) -> str | None:
        """The URI of the party being transferred: the other answered leg of the session."""
        for other in self.legs.values():
            if other is transferor or other.ended or not other.answered_sent:
                continue
            try:
                uri: str = other.call.getInfo().remoteUri
            except pj.Error:
                continue
            if uri:
                return uri
        return None

    def _set_identity(self, uri: str | None) -> None:
        """From of the call pjsua places for a transfer: the account's identity is the only
        handle pjsua2 offers, so it is set to the remaining party before pjsua dials (one
        call session per worker, and originate always sets its own From)."""
        want = uri or self.default_id
        if self.acfg.idUri == want:
            return
        self.acfg.idUri = want
        try:
            self.acc.modify(self.acfg)
        except pj.Error as exc:
            log.warning("could not set the transfer identity %s: %s", want, exc.info())

    def _check_pending_transfers(self) -> None:
        """A transfer leg pjsua failed to place never gets a call id: report it ended."""
        now = time.monotonic()
        for leg in list(self.legs.values()):
            if leg.pending_since is None:
                continue
            if leg.call.getId() != pj.PJSUA_INVALID_ID:
                leg.pending_since = None
            elif now - leg.pending_since > 2.0:
                leg.pending_since = None
                self._end_leg(leg, 500, "transfer call could not be placed")

    def on_replace_request(self, call: _Call, prm: Any) -> None:
        """INVITE with Replaces for one of our dialogs: only from the front door."""
        src = prm.rdata.srcAddress
        if src not in self.trusted:
            log.warning("INVITE/Replaces from untrusted %s rejected", src)
            prm.statusCode = 403
            prm.reason = "Forbidden"
            return
        if len(self.legs) >= self.capacity:
            prm.statusCode = 486
            prm.reason = "Busy Here"

    def on_replaced(self, call: _Call, prm: Any) -> None:
        """pjsua answers the replacing call itself and hangs up the old one; the new call
        becomes leg ``in-<n>`` and the core re-wires it (``replaced`` event)."""
        self.next_in += 1
        new_id = f"in-{self.next_in}"
        newc = _Call(self, self.acc, prm.newCallId, leg=new_id)
        prm.newCall = newc
        self.legs[new_id] = Leg(id=new_id, call=newc, incoming=True)
        ci = newc.getInfo()
        self.emit(P.Replaced(leg=call.leg, new_leg=new_id, from_uri=ci.remoteUri, call_id=ci.callIdString))

    # ------------------------------------------------------------ commands
    def _handle_line(self, line: bytes) -> None:
        try:
            cmd = P.decode(line)
        except P.ProtocolError as exc:
            self.emit(P.Error(message=f"bad command line: {exc}"))
            return
        if not isinstance(cmd, P.Command):
            self.emit(P.Error(message="expected a command"))
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("command %s", P.redact(cmd))  # an originate's password: ***
        try:
            result = getattr(self, "cmd_" + cmd.name.value)(cmd) or {}
            self.emit(P.Reply(id=cmd.id, ok=True, result=result))
        except pj.Error as exc:
            self.emit(P.Reply(id=cmd.id, ok=False, error=f"pjsua2: {exc.info()}"))
        except (LookupError, ValueError, OSError) as exc:
            self.emit(P.Reply(id=cmd.id, ok=False, error=str(exc).strip("'\"")))

    def cmd_answer(self, c: P.Answer) -> None:
        leg = self._leg(c.leg)
        if not leg.incoming:
            raise ValueError("answer applies to incoming legs only")
        op = pj.CallOpParam(True)
        op.statusCode = c.code
        leg.call.answer(op)

    def cmd_hangup(self, c: P.Hangup) -> None:
        leg = self._leg(c.leg)
        op = pj.CallOpParam(True)
        if c.code:
            op.statusCode = c.code
        elif leg.incoming and not leg.answered_sent and leg.call.getInfo().state < pj.PJSIP_INV_STATE_CONNECTING:
            op.statusCode = 603
        leg.call.hangup(op)

    def cmd_originate(self, c: P.Originate) -> dict[str, Any]:
        if not c.leg_id or c.leg_id in self.legs or c.leg_id.startswith("in-"):
            raise ValueError(f"bad or duplicate leg id: {c.leg_id!r}")
        if len(self.legs) >= self.capacity:
            raise ValueError("worker at capacity")
        call = _Call(self, self.acc, leg=c.leg_id)
        op = pj.CallOpParam(True)
        for k, v in c.headers.items():
            h = pj.SipHeader()
            h.hName = k
            h.hValue = v
            op.txOption.headers.append(h)
        if c.from_uri:
            op.txOption.localUri = c.from_uri
        self.legs[c.leg_id] = Leg(id=c.leg_id, call=call, incoming=False)
        if c.auth:
            self._set_auth(c.auth)
        try:
            call.makeCall(c.uri, op)
        except pj.Error:
            del self.legs[c.leg_id]
            self.release_queue.append(call)
            raise
        finally:
            # pjsua copies the account's credentials into the new dialog's auth session
            # (pjsua_call_make_call): the account keeps none between originates, so neither
            # a later leg nor a transfer leg pjsua places ever carries this trunk's password
            if c.auth:
                self._set_auth(None)
        return {"leg": c.leg_id}

    def _set_auth(self, auth: dict[str, str] | None) -> None:
        """The account's digest credentials: exactly ``auth`` (RFC 3261 §22.2/§22.3, pjsip
        answers a 401/407 with them and re-sends the INVITE with CSeq+1), or none."""
        creds = self.acfg.sipConfig.authCreds
        if auth is None and len(creds) == 0:
            return
        creds.clear()
        if auth is not None:
            creds.append(
                pj.AuthCredInfo(
                    "digest",
                    auth.get("realm") or "*",
                    auth["username"],
                    pj.PJSIP_CRED_DATA_PLAIN_PASSWD,
                    auth["password"],
                )
            )
        self.acfg.sipConfig.authCreds = creds
        self.acc.modify(self.acfg)

    def cmd_play(self, c: P.Play) -> None:
        am = self._media(c.leg)
        leg = self.legs[c.leg]
        self._stop_player(leg)
        self.player_serial += 1
        p = _Player(self.eof_queue, c.leg, self.player_serial, self.wake)
        p.loop = c.loop
        p.file = c.file
        if not os.path.isfile(c.file):
            raise ValueError(f"no such file: {c.file}")
        p.createPlayer(c.file, 0 if c.loop else pj.PJMEDIA_FILE_NO_LOOP)
        leg.player = p
        p.startTransmit(am)

    def cmd_stop_play(self, c: P.StopPlay) -> None:
        self._stop_player(self._leg(c.leg))

    def cmd_record(self, c: P.Record) -> dict[str, Any]:
        if not c.legs or not c.path_prefix:
            raise ValueError("record needs legs and path_prefix")
        media = {leg: self._media(leg) for leg in c.legs}
        for leg in c.legs:
            if leg in self.recorders:
                raise ValueError(f"leg {leg} is already recorded")
        os.makedirs(os.path.dirname(os.path.abspath(c.path_prefix)), exist_ok=True)
        created: dict[str, tuple[pj.AudioMediaRecorder, str]] = {}
        for leg in c.legs:
            path = f"{c.path_prefix}-{leg}.wav"
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(path)
            created[leg] = (rec, path)
        # connect all in one go so the files start on the same conference tick
        for leg in c.legs:
            media[leg].startTransmit(created[leg][0])
        self.recorders.update(created)
        return {"files": {leg: p for leg, (_, p) in created.items()}}

    def cmd_stop_record(self, c: P.StopRecord) -> dict[str, Any]:
        names = list(self.recorders) if c.legs is None else list(c.legs)
        files = {}
        for leg in names:
            if leg in self.recorders:
                files[leg] = self.recorders[leg][1]
                self._stop_recorder(leg, "stopped")
        return {"files": files}

    def cmd_bridge(self, c: P.Bridge) -> None:
        if c.leg_a == c.leg_b:
            raise ValueError("cannot bridge a leg to itself")
        a, b = self._media(c.leg_a), self._media(c.leg_b)
        a.startTransmit(b)
        b.startTransmit(a)
        self.legs[c.leg_a].bridged.add(c.leg_b)
        self.legs[c.leg_b].bridged.add(c.leg_a)

    def cmd_unbridge(self, c: P.Unbridge) -> None:
        la, lb = self._leg(c.leg_a), self._leg(c.leg_b)
        if la.media_up and lb.media_up:
            a, b = la.call.getAudioMedia(-1), lb.call.getAudioMedia(-1)
            a.stopTransmit(b)
            b.stopTransmit(a)
        la.bridged.discard(lb.id)
        lb.bridged.discard(la.id)

    def cmd_send_dtmf(self, c: P.SendDtmf) -> None:
        self._media(c.leg)
        if not re.fullmatch(r"[0-9A-Da-d*#]+", c.digits):
            raise ValueError("digits must be 0-9, A-D, * or #")
        self.legs[c.leg].call.dialDtmf(c.digits)

    def cmd_ping(self, c: P.Ping) -> dict[str, Any]:
        return {
            "legs": sorted(self.legs),
            "uptime": round(time.monotonic() - self.started, 3),
            "recorders": len(self.recorders),
        }

    def cmd_shutdown(self, c: P.Shutdown) -> None:
        self.running = False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m media.worker")
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--sip-addr", default="127.0.0.1", help="SIP bind address (loopback)")
    ap.add_argument("--rtp-start", type=int, required=True)
    ap.add_argument("--rtp-count", type=int, default=16)
    ap.add_argument("--media-addr", default="127.0.0.1", help="RTP bind address")
    ap.add_argument("--public-addr", default="", help="address put in SDP, if not media-addr")
    ap.add_argument(
        "--trusted", action="append", default=[], help="host:port allowed to send INVITEs (the front door); repeatable"
    )
    ap.add_argument("--proxy", default="", help="outbound proxy URI for originate (e.g. sip:127.0.0.1:5060;lr)")
    ap.add_argument("--max-calls", type=int, default=64, help="ask pjsua for this many calls")
    ap.add_argument("--clock-rate", type=int, default=8000)
    ap.add_argument("--rtp-timeout", type=float, default=0.0, help="report legs with no RTP for this long (0: off)")
    ap.add_argument("--session-expires", type=int, default=1800, help="RFC 4028 session timer, s (0: off)")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--pj-log-level", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format=f"%(asctime)s worker[{os.getpid()}] %(name)s %(levelname)s %(message)s",
    )
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    w = Worker(args)

    def on_term(signum: int, frame: Any) -> None:
        w.running = False
        w.wake()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    w.start()
    rc = w.run()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(rc)  # the stdin thread may sit in read(); skip interpreter teardown


if __name__ == "__main__":
    sys.exit(main())
