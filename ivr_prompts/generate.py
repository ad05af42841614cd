#!/usr/bin/env python3
"""Regenerate pypbx's shipped prompts from ivr_prompts/manifest.toml.

Dev-time tool: it needs espeak-ng on PATH (``apt-get install espeak-ng``) plus numpy
and soundfile. CI does not run it; the WAVs it writes are committed.

For every prompt id and language in the manifest it

1. speaks the text with espeak-ng (22050 Hz mono),
2. resamples to 8 kHz with a Kaiser-windowed sinc low-pass (band-limited
   interpolation: for 22050 -> 8000, i.e. 160/441, it is the polyphase filter with
   every phase evaluated exactly; cut-off 3.6 kHz, stop-band from ~3.8 kHz at about
   -85 dB, so nothing aliases),
3. trims leading/trailing silence to ``edge_silence_ms`` (100 ms) with short fades,
4. normalises the peak to ``peak_dbfs`` (-3 dBFS), so nothing clips,
5. writes ``ivr_prompts/<lang>/<prompt_id>.wav`` as 8 kHz mono 16-bit PCM.

It also synthesises the non-speech sounds: ``tones/beep.wav`` and the music-on-hold
loop ``moh/default.wav`` (numpy only, license-free: made here).

Usage::

    python ivr_prompts/generate.py                  # everything
    python ivr_prompts/generate.py --lang ru        # one language (plus nothing else)
    python ivr_prompts/generate.py --id please_hold --id welcome
    python ivr_prompts/generate.py --no-speech      # only beep and music on hold
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.toml"
OUT_RATE = 8000


# --------------------------------------------------------------------------- manifest

def load_manifest(path: Path = MANIFEST) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def prompt_langs(manifest: dict, prompt_id: str) -> list[str]:
    """Languages a prompt exists in (all of the manifest's unless it says `langs`)."""
    entry = manifest["prompts"][prompt_id]
    return list(entry.get("langs", manifest["meta"]["languages"]))


def expected_files(manifest: dict) -> list[tuple[str, str, str]]:
    """(lang, prompt_id, text) for every spoken file the manifest asks for."""
    out = []
    for pid, entry in manifest["prompts"].items():
        for lang in prompt_langs(manifest, pid):
            out.append((lang, pid, entry[lang]))
    return out


# --------------------------------------------------------------------------- DSP

def dbfs(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def resample(x: np.ndarray, sr_in: int, sr_out: int, *, cutoff_hz: float | None = None,
             half_width: int | None = None, beta: float = 8.6) -> np.ndarray:
    """Band-limited resampling with a Kaiser-windowed sinc low-pass.

    Every output sample y[n] at time t = n * sr_in / sr_out (in input samples) is
    sum_k x[k] * h(t - k), h the windowed sinc with cut-off ``cutoff_hz`` (default 90%
    of the lower Nyquist). For rational ratios (22050 -> 8000 is 441/160) this equals a
    polyphase FIR with all phases; evaluating h directly avoids storing them.
    """
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x.copy()
    nyq = min(sr_in, sr_out) / 2.0
    if cutoff_hz is None:
        cutoff_hz = 0.9 * nyq
    fc = cutoff_hz / sr_in                      # cycles per input sample
    if half_width is None:
        # ~200 taps each side at 22050 Hz: transition band of ~300 Hz at beta 8.6.
        half_width = int(np.ceil(200 * sr_in / 22050))
    n_out = int(np.floor(len(x) * sr_out / sr_in))
    if n_out <= 0:
        return np.zeros(0)
    pad = half_width + 1
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    offsets = np.arange(-half_width, half_width + 1)
    # Output n sits at t = n * up / down input samples; its fractional part takes
    # only `down` distinct values (the polyphase branches): tabulate h for each.
    g = math.gcd(sr_in, sr_out)
    up, down = sr_in // g, sr_out // g          # t = n * up / down
    phase_frac = np.arange(down) / down
    d_tab = phase_frac[:, None] - offsets[None, :]   # distance t - k, per phase
    win_arg = np.clip(1.0 - (d_tab / (half_width + 1)) ** 2, 0.0, None)
    win = np.i0(beta * np.sqrt(win_arg)) / np.i0(beta)
    h_tab = 2.0 * fc * np.sinc(2.0 * fc * d_tab) * win
    y = np.empty(n_out)
    chunk = 4096
    for start in range(0, n_out, chunk):
        n = np.arange(start, min(start + chunk, n_out))
        num = n * up
        base, ph = np.divmod(num, down)
        k = base[:, None] + offsets[None, :]
        y[start:start + len(n)] = np.einsum("ij,ij->i", xp[k + pad], h_tab[ph])
    return y


def dc_block(x: np.ndarray, r: float = 0.99) -> np.ndarray:
    """One-pole DC blocker y[n] = x[n] - x[n-1] + r*y[n-1] (about 13 Hz at 8 kHz)."""
    y = np.empty_like(x)
    prev_x = prev_y = 0.0
    for i, v in enumerate(x.tolist()):
        prev_y = v - prev_x + r * prev_y
        prev_x = v
        y[i] = prev_y
    return y


def _envelope(x: np.ndarray, sr: int, win_ms: float = 10.0) -> np.ndarray:
    w = max(1, int(sr * win_ms / 1000))
    return np.sqrt(np.convolve(x * x, np.ones(w) / w, mode="same"))


def trim_silence(x: np.ndarray, sr: int, keep_ms: float = 100.0,
                 threshold_db: float = -40.0, fade_ms: float = 5.0) -> np.ndarray:
    """Cut leading/trailing silence down to ``keep_ms`` on each side.

    Sound is where the 10 ms RMS envelope is within ``threshold_db`` of its maximum.
    Missing margin is padded with zeros; the edges get short raised-cosine fades.
    """
    if len(x) == 0:
        return x
    env = _envelope(x, sr)
    peak = env.max()
    if peak <= 0:
        return x
    idx = np.flatnonzero(env >= peak * dbfs(threshold_db))
    keep = int(sr * keep_ms / 1000)
    fade = int(sr * fade_ms / 1000)
    first, last = int(idx[0]), int(idx[-1])
    # Fade the speech edges over a few ms so the cut itself never clicks.
    lo = max(0, first - fade)
    hi = min(len(x), last + fade + 1)
    y = x[lo:hi].copy()
    if fade > 0 and len(y) > 2 * fade:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    return np.concatenate([np.zeros(keep), y, np.zeros(keep)])


def normalise_peak(x: np.ndarray, peak_db: float) -> np.ndarray:
    peak = np.max(np.abs(x)) if len(x) else 0.0
    if peak <= 0:
        return x
    return x * (dbfs(peak_db) / peak)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, x: np.ndarray, sr: int = OUT_RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), to_pcm16(x), sr, subtype="PCM_16", format="WAV")


# --------------------------------------------------------------------------- speech

def espeak(text: str, voice: str, speed: int) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        sys.exit("generate.py: espeak-ng not found (apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.wav")
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", out, text],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        data, sr = sf.read(out, dtype="float64", always_2d=True)
    return data.mean(axis=1), sr


def render_prompt(text: str, voice: str, speed: int, meta: dict) -> np.ndarray:
    x, sr = espeak(text, voice, speed)
    y = dc_block(resample(x, sr, OUT_RATE))
    y = trim_silence(y, OUT_RATE, keep_ms=meta.get("edge_silence_ms", 100))
    return normalise_peak(y, meta.get("peak_dbfs", -3.0))


# --------------------------------------------------------------------------- tones, MOH

def make_beep(frequency_hz: float = 1000.0, duration_ms: float = 400.0,
              peak_db: float = -6.0, ramp_ms: float = 10.0, sr: int = OUT_RATE) -> np.ndarray:
    n = int(sr * duration_ms / 1000)
    t = np.arange(n) / sr
    y = np.sin(2 * np.pi * frequency_hz * t)
    r = int(sr * ramp_ms / 1000)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, r))
    y[:r] *= ramp
    y[-r:] *= ramp[::-1]
    return y * dbfs(peak_db)


def make_sequence(notes: list, gap_ms: float = 60.0, peak_db: float = -6.0,
                  sr: int = OUT_RATE) -> np.ndarray:
    """Short beeps one after the other (``notes``: [frequency Hz, duration ms] pairs), e.g.
    the reason-code confirmation (rising) and error (falling) tones."""
    gap = np.zeros(int(sr * gap_ms / 1000))
    parts = []
    for i, (f, ms) in enumerate(notes):
        if i:
            parts.append(gap)
        parts.append(make_beep(f, ms, peak_db, ramp_ms=8.0, sr=sr))
    return np.concatenate(parts)


def write_sequences(manifest: dict) -> list[str]:
    """tones/<name>.wav for every [tones.NAME] that lists ``notes``."""
    out = []
    for name, t in manifest["tones"].items():
        if "notes" in t:
            write_wav(HERE / "tones" / f"{name}.wav", make_sequence(t["notes"], t["gap_ms"], t["peak_dbfs"]))
            out.append(f"tones/{name}.wav")
    return out


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12.0)


def make_moh(duration_s: float = 24.0, peak_db: float = -12.0, sr: int = OUT_RATE) -> np.ndarray:
    """A gentle chord progression that loops seamlessly.

    Eight chords of 3 s (C - Am - F - G - C - Am - Dm7 - G7) as soft pads with
    overlapping raised-cosine envelopes, a slow bell-like arpeggio on top and a
    soft bass an octave below. Every note is added modulo the loop length, so a
    tail that runs past the end continues at the start: the loop has no seam.
    Pitches sit in the telephone band (bass ~130-200 Hz is carried by its
    harmonics; pads 260-700 Hz; bells up to ~1.3 kHz).
    """
    L = int(round(duration_s * sr))
    out = np.zeros(L)
    # (root MIDI for bass, chord tones for pad) - C major, middle register
    chords = [
        (48, [60, 64, 67, 72]),   # C
        (45, [57, 60, 64, 69]),   # Am
        (41, [57, 60, 65, 69]),   # F
        (43, [55, 59, 62, 67]),   # G
        (48, [60, 64, 67, 72]),   # C
        (45, [57, 60, 64, 69]),   # Am
        (50, [57, 60, 62, 65]),   # Dm7
        (43, [55, 59, 62, 65]),   # G7
    ]
    step = L // len(chords)

    def add(sig: np.ndarray, start: int) -> None:
        idx = (start + np.arange(len(sig))) % L
        np.add.at(out, idx, sig)

    rng = np.random.default_rng(7)
    for ci, (root, tones) in enumerate(chords):
        start = ci * step
        # pad: 4.2 s per chord so neighbours cross-fade; slow attack and release
        n = int(step * 1.4)
        t = np.arange(n) / sr
        env = np.sin(np.pi * np.arange(n) / n) ** 2
        pad = np.zeros(n)
        for m in tones:
            f = _midi_hz(m)
            detune = 1.0 + rng.uniform(-0.0015, 0.0015)
            ph = rng.uniform(0, 2 * np.pi)
            pad += (np.sin(2 * np.pi * f * detune * t + ph)
                    + 0.25 * np.sin(2 * np.pi * 2 * f * t + ph)
                    + 0.08 * np.sin(2 * np.pi * 3 * f * t + ph))
        add(0.22 * pad * env, start - int(step * 0.2))
        # bass: root with harmonics so it survives the telephone band
        fb = _midi_hz(root)
        bass = (np.sin(2 * np.pi * fb * t) + 0.5 * np.sin(2 * np.pi * 2 * fb * t)
                + 0.3 * np.sin(2 * np.pi * 3 * fb * t))
        add(0.25 * bass * env, start - int(step * 0.2))
        # bell arpeggio: 4 notes per chord, one octave up, soft exponential decay
        arp = [tones[0] + 12, tones[1] + 12, tones[2] + 12, tones[1] + 12]
        for ai, m in enumerate(arp):
            nb = int(1.6 * sr)
            tb = np.arange(nb) / sr
            f = _midi_hz(m)
            att = np.minimum(1.0, tb / 0.01)
            envb = att * np.exp(-tb / 0.45)
            bell = (np.sin(2 * np.pi * f * tb) + 0.3 * np.sin(2 * np.pi * 2.01 * f * tb)) * envb
            add(0.20 * bell, start + ai * (step // 4))
    # gentle low-pass against anything harsh above ~3.4 kHz
    taps = 63
    k = np.arange(taps) - taps // 2
    fc = 3300.0 / sr
    h = 2 * fc * np.sinc(2 * fc * k) * np.kaiser(taps, 8.0)
    h /= h.sum()
    ext = np.concatenate([out[-taps:], out, out[:taps]])        # circular filtering
    out = np.convolve(ext, h, mode="same")[taps:-taps]
    out -= out.mean()
    return normalise_peak(out, peak_db)


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lang", action="append", help="only these languages")
    ap.add_argument("--id", action="append", dest="ids", help="only these prompt ids")
    ap.add_argument("--no-speech", action="store_true", help="only tones and music on hold")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)

    manifest = load_manifest()
    meta = manifest["meta"]

    if not args.lang and not args.ids:
        beep = manifest["tones"]["beep"]
        write_wav(HERE / "tones" / "beep.wav",
                  make_beep(beep["frequency_hz"], beep["duration_ms"], beep["peak_dbfs"]))
        moh = manifest["moh"]["default"]
        write_wav(HERE / "moh" / "default.wav", make_moh(moh["duration_s"], moh["peak_dbfs"]))
        print("wrote tones/beep.wav, moh/default.wav, " + ", ".join(write_sequences(manifest)))
    if args.no_speech:
        return 0

    jobs = [(lang, pid, text) for lang, pid, text in expected_files(manifest)
            if (not args.lang or lang in args.lang) and (not args.ids or pid in args.ids)]

    def work(job):
        lang, pid, text = job
        v = manifest["voices"][lang]
        y = render_prompt(text, v["voice"], int(v["speed"]), meta)
        write_wav(HERE / lang / f"{pid}.wav", y)
        return lang, pid, len(y) / OUT_RATE

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for lang, pid, dur in pool.map(work, jobs):
            print(f"{lang}/{pid}.wav  {dur:5.2f} s")

    # Report WAVs the manifest no longer knows (not deleted: a clinic may have added them).
    wanted = {(lang, pid) for lang, pid, _ in expected_files(manifest)}
    for lang in meta["languages"]:
        for p in sorted((HERE / lang).glob("*.wav")):
            if (lang, p.stem) not in wanted:
                print(f"note: {lang}/{p.name} is not in the manifest", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
