"""A pjsua2 test phone in its own process, driven by JSON lines on stdin/stdout.

Not part of the product: a real SIP user agent (pjsip's) that tests point at the PBX,
like a desk phone. One process = one phone (one pjsua2 endpoint, one account).

Commands (one JSON object per line on stdin), each answered by {"reply": id, ...}:
  {"id": 1, "cmd": "register", "server": "127.0.0.1:5060", "user": "1001", "password": "...",
   "transport": "udp", "expires": 300, "mwi": false}      (mwi: subscribe to the own mailbox)
  {"cmd": "unregister"}
  {"cmd": "call", "uri": "sip:1002@127.0.0.1:5060"}          -> {"call": n}
  {"cmd": "answer", "call": n, "code": 200}
  {"cmd": "hangup", "call": n}
  {"cmd": "play", "call": n, "file": "x.wav"}                 (loops)
  {"cmd": "record", "call": n, "file": "y.wav"}
  {"cmd": "stop_record", "call": n} / {"cmd": "stop_play", "call": n}
  {"cmd": "dtmf", "call": n, "digits": "123"}
  {"cmd": "hold", "call": n} / {"cmd": "unhold", "call": n}
  {"cmd": "codecs", "codecs": ["G722/16000"]}                 (offer/accept only these, in order)
  {"cmd": "xfer", "call": n, "uri": "sip:1003@..."}           (blind transfer, REFER)
  {"cmd": "xfer_replaces", "call": n, "other": m}             (attended transfer)
  Like a desk phone, the transferor hangs up its call once the transfer's final NOTIFY
  says 2xx (event {"event": "xfer_status", ...} first).
  {"cmd": "quit"}
Events on stdout: {"event": "reg", "code": 200, "active": true}, {"event": "incoming", "call": n,
  "from": "..."}, {"event": "state", "call": n, "state": "CONFIRMED", "code": 200, "reason": "OK"},
  {"event": "media", "call": n, "active": true, "codec": "PCMU"}, {"event": "dtmf", "call": n, "digit": "5"},
  {"event": "mwi", "waiting": true, "body": "Messages-Waiting: yes ..."} (RFC 3842 NOTIFY received).
"""

from __future__ import annotations

import json
import os
import select
import sys

import pjsua2 as pj

_out_lock = None


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Call(pj.Call):
    def __init__(self, phone: "Phone", acc, call_id=pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.phone = phone
        self.n = 0
        self.player: pj.AudioMediaPlayer | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.pending_play: str | None = None
        self.pending_record: str | None = None

    def audio(self):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return self.getAudioMedia(i)
        return None

    def onCallState(self, prm) -> None:
        ci = self.getInfo()
        emit({"event": "state", "call": self.n, "state": ci.stateText, "code": ci.lastStatusCode,
              "reason": ci.lastReason})
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.phone.ended.append(self)

    def onCallMediaState(self, prm) -> None:
        am = self.audio()
        codec = ""
        if am is not None:
            try:
                ci = self.getInfo()
                idx = next(i for i, m in enumerate(ci.media) if m.type == pj.PJMEDIA_TYPE_AUDIO)
                codec = self.getStreamInfo(idx).codecName
            except Exception:
                pass
        emit({"event": "media", "call": self.n, "active": am is not None, "codec": codec})
        if am is not None:
            if self.pending_play:
                self.start_play(self.pending_play)
            if self.pending_record:
                self.start_record(self.pending_record)

    def start_play(self, path: str) -> None:
        am = self.audio()
        if am is None:
            self.pending_play = path
            return
        self.pending_play = None
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(path, 0)
        self.player.startTransmit(am)

    def start_record(self, path: str) -> None:
        am = self.audio()
        if am is None:
            self.pending_record = path
            return
        self.pending_record = None
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(path)
        am.startTransmit(self.recorder)

    def onDtmfDigit(self, prm) -> None:
        emit({"event": "dtmf", "call": self.n, "digit": prm.digit})

    def onCallTransferStatus(self, prm) -> None:
        emit({"event": "xfer_status", "call": self.n, "code": prm.statusCode, "final": prm.finalNotify})
        if prm.finalNotify and 200 <= prm.statusCode < 300:
            self.phone.xfer_done.append(self)      # hang up in the loop, not in the callback


class Account(pj.Account):
    def __init__(self, phone: "Phone") -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm) -> None:
        info = self.getInfo()
        emit({"event": "reg", "code": prm.code, "active": info.regIsActive, "expires": info.regExpiresSec})

    def onMwiInfo(self, prm) -> None:
        msg = prm.rdata.wholeMsg
        body = msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""
        emit({"event": "mwi", "waiting": "messages-waiting: yes" in body.lower(), "body": body})

    def onIncomingCall(self, prm) -> None:
        call = Call(self.phone, self, prm.callId)
        n = self.phone.add(call)
        emit({"event": "incoming", "call": n, "from": call.getInfo().remoteUri})


class Phone:
    def __init__(self) -> None:
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjphone (pjsua2 test phone)"
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        # Keep the (null) sound device open: pjsua closes an idle one after 1 s by default,
        # which stops the conference clock that drives the stream, so RFC 2833 digits still
        # queued by dialDtmf were never sent (dialDtmf("19*") 0.5 s into the first call lost
        # the "*"). Desk phones keep sending; so must the test phone.
        cfg.medConfig.sndAutoCloseTime = -1
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        for codec, prio in (("PCMU/8000", 255), ("PCMA/8000", 254), ("G722/16000", 0)):
            try:
                self.ep.codecSetPriority(codec, prio)
            except pj.Error:
                pass
        for c in self.ep.codecEnum2():
            if c.codecId.lower().startswith(("speex", "ilbc", "gsm", "opus")):
                self.ep.codecSetPriority(c.codecId, 0)
        self.transports: dict[str, int] = {}
        for name, kind in (("udp", pj.PJSIP_TRANSPORT_UDP), ("tcp", pj.PJSIP_TRANSPORT_TCP)):
            tc = pj.TransportConfig()
            tc.port = 0
            tc.boundAddress = "127.0.0.1"
            self.transports[name] = self.ep.transportCreate(kind, tc)
        self.ep.libStart()
        self.account: Account | None = None
        self.calls: dict[int, Call] = {}
        self.ended: list[Call] = []
        self.xfer_done: list[Call] = []
        self.next = 1

    def add(self, call: Call) -> int:
        n = self.next
        self.next += 1
        call.n = n
        self.calls[n] = call
        return n

    def register(self, server: str, user: str, password: str, transport: str = "udp",
                 expires: int = 300, mwi: bool = False) -> None:
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{user}@{server.split(':')[0]}"
        acfg.regConfig.registrarUri = f"sip:{server};transport={transport}"
        acfg.regConfig.timeoutSec = expires
        acfg.sipConfig.transportId = self.transports[transport]
        acfg.sipConfig.proxies.append(f"sip:{server};transport={transport};lr")
        cred = pj.AuthCredInfo("digest", "*", user, 0, password)
        acfg.sipConfig.authCreds.append(cred)
        acfg.mwiConfig.enabled = mwi          # SUBSCRIBE message-summary to idUri after registering
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        self.account = Account(self)
        self.account.create(acfg)

    def handle(self, req: dict) -> dict:
        cmd = req.get("cmd")
        c = self.calls.get(req.get("call", -1))
        if cmd == "register":
            self.register(req["server"], req["user"], req["password"], req.get("transport", "udp"),
                          int(req.get("expires", 300)), bool(req.get("mwi", False)))
            return {}
        if cmd == "codecs":            # like a phone's codec list: only these, in this order
            want = [w.lower() for w in req["codecs"]]
            for ci in self.ep.codecEnum2():
                cid = ci.codecId.lower()
                rank = next((i for i, w in enumerate(want) if cid.startswith(w)), None)
                self.ep.codecSetPriority(ci.codecId, 0 if rank is None else 255 - rank)
            return {}
        if cmd == "unregister":
            assert self.account is not None
            self.account.setRegistration(False)
            return {}
        if cmd == "call":
            assert self.account is not None
            call = Call(self, self.account)
            n = self.add(call)
            prm = pj.CallOpParam(True)
            call.makeCall(req["uri"], prm)
            return {"call": n}
        if c is None:
            return {"error": f"no call {req.get('call')}"}
        if cmd == "answer":
            prm = pj.CallOpParam()
            prm.statusCode = int(req.get("code", 200))
            c.answer(prm)
        elif cmd == "hangup":
            prm = pj.CallOpParam()
            c.hangup(prm)
        elif cmd == "play":
            c.start_play(req["file"])
        elif cmd == "record":
            c.start_record(req["file"])
        elif cmd == "stop_record":
            c.pending_record = None
            c.recorder = None          # released: pjmedia finalises the WAV
        elif cmd == "stop_play":
            c.pending_play = None
            c.player = None
        elif cmd == "dtmf":
            c.dialDtmf(req["digits"])
        elif cmd == "hold":
            c.setHold(pj.CallOpParam(True))
        elif cmd == "unhold":
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            c.reinvite(prm)
        elif cmd == "xfer":
            c.xfer(req["uri"], pj.CallOpParam(True))
        elif cmd == "xfer_replaces":
            other = self.calls[req["other"]]
            c.xferReplaces(other, pj.CallOpParam(True))
        else:
            return {"error": f"unknown command {cmd}"}
        return {}

    def run(self) -> None:
        buf = b""
        fd = sys.stdin.fileno()
        os.set_blocking(fd, False)
        emit({"event": "ready"})
        running = True
        while running:
            self.ep.libHandleEvents(10)
            r, _, _ = select.select([fd], [], [], 0)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    req = json.loads(line)
                    if req.get("cmd") == "quit":
                        running = False
                        break
                    try:
                        out = self.handle(req)
                    except pj.Error as e:
                        out = {"error": e.info()}
                    except Exception as e:  # report, keep the phone alive
                        out = {"error": repr(e)}
                    emit({"reply": req.get("id"), **out})
            for call in self.xfer_done:
                if call.isActive():
                    try:
                        call.hangup(pj.CallOpParam())
                    except pj.Error:
                        pass
            self.xfer_done.clear()
            for call in self.ended:
                call.player = None
                call.recorder = None
                self.calls.pop(call.n, None)
            self.ended.clear()

    def close(self) -> None:
        for call in list(self.calls.values()):
            call.player = None
            call.recorder = None
        self.calls.clear()
        self.ended.clear()
        if self.account is not None:
            self.account.shutdown()
            self.account = None
        for _ in range(20):
            self.ep.libHandleEvents(10)
        self.ep.libDestroy()


def main() -> None:
    phone = Phone()
    try:
        phone.run()
    finally:
        phone.close()


if __name__ == "__main__":
    main()
