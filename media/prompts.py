"""Prompt conversion to the engine's format: 8 kHz, mono, 16-bit PCM WAV.

pjsua2's WAV player takes only 16-bit PCM (float and 24-bit files are refused), and the
conference bridge runs at 8 kHz, so every prompt is converted once, up front:
any WAV/FLAC/OGG (whatever libsndfile reads) -> mix down to mono (average, not sum, so no
clipping) -> resample with a polyphase windowed-sinc (Kaiser) FIR in numpy -> 16-bit
with clipping -> written atomically.

:func:`convert_prompt` raises :class:`PromptError` with a one-line reason for what
cannot be converted (unreadable, empty, too long, absurd sample rate).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from media.recording import write_atomic

ENGINE_RATE = 8000
MAX_SECONDS = 1800.0
MIN_RATE = 4000
MAX_RATE = 384000


class PromptError(Exception):
    """The file cannot be converted; ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class PromptInfo:
    path: str
    duration: float
    source_rate: int
    source_channels: int
    source_format: str
    source_subtype: str
    clipped_samples: int
    peak_dbfs: float


ZERO_CROSSINGS = 16


def _kaiser_lowpass(up: int, down: int, zero_crossings: int = ZERO_CROSSINGS, beta: float = 8.0) -> np.ndarray:
    m = max(up, down)
    fc = 0.94 / m  # cutoff, fraction of the upsampled Nyquist
    half = zero_crossings * m
    n = np.arange(-half, half + 1, dtype=np.float64)
    h = fc * np.sinc(fc * n) * np.kaiser(2 * half + 1, beta)
    return h * up  # gain lost by zero insertion


def resample(x: np.ndarray, rate_in: int, rate_out: int, chunk: int = 32768) -> np.ndarray:
    """Resample a 1-D float signal by the rational factor rate_out/rate_in (polyphase FIR)."""
    if rate_in == rate_out:
        return x.astype(np.float64, copy=True)
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    h = _kaiser_lowpass(up, down)
    taps = -(-len(h) // up)
    h = np.concatenate([h, np.zeros(taps * up - len(h))])
    bank = h.reshape(taps, up).T  # bank[p, i] = h[p + up*i]
    center = ZERO_CROSSINGS * max(up, down)  # the filter's middle tap (linear phase)
    n_out = -(-len(x) * up // down)
    pad = taps + 1
    xp = np.concatenate([np.zeros(pad), x.astype(np.float64), np.zeros(pad)])
    y = np.empty(n_out, dtype=np.float64)
    i = np.arange(taps)
    for start in range(0, n_out, chunk):
        k = np.arange(start, min(n_out, start + chunk), dtype=np.int64)
        nk = k * down + center
        phase = nk % up
        base = nk // up
        idx = base[:, None] - i[None, :] + pad
        idx = np.clip(idx, 0, len(xp) - 1)
        y[start : start + len(k)] = np.einsum("ki,ki->k", bank[phase], xp[idx])
    return y


def convert_prompt(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, max_seconds: float = MAX_SECONDS, mode: int = 0o644
) -> PromptInfo:
    """Convert any audio file libsndfile reads to an 8 kHz mono 16-bit WAV at ``dst``."""
    src = os.fspath(src)
    if not os.path.isfile(src):
        raise PromptError(f"{src}: no such file")
    try:
        info = sf.info(src)
    except Exception as exc:  # libsndfile's error types vary by version
        raise PromptError(
            f"{os.path.basename(src)}: not a readable audio file (WAV/FLAC/OGG expected): {exc}"
        ) from None
    if info.frames <= 0:
        raise PromptError(f"{os.path.basename(src)}: contains no audio")
    if not (MIN_RATE <= info.samplerate <= MAX_RATE):
        raise PromptError(
            f"{os.path.basename(src)}: sample rate {info.samplerate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz"
        )
    if info.duration > max_seconds:
        raise PromptError(
            f"{os.path.basename(src)}: {info.duration:.0f} s is longer than the {max_seconds:.0f} s limit"
        )
    try:
        data, rate = sf.read(src, dtype="float64", always_2d=True)
    except Exception as exc:
        raise PromptError(f"{os.path.basename(src)}: cannot decode: {exc}") from None
    if data.size == 0:
        raise PromptError(f"{os.path.basename(src)}: contains no audio")
    if not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
    mono = data.mean(axis=1)
    out = resample(mono, rate, ENGINE_RATE)
    scaled = np.round(out * 32767.0)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    pcm = np.clip(scaled, -32768, 32767).astype(np.int16)
    peak = float(np.max(np.abs(pcm.astype(np.int32)))) if len(pcm) else 0.0
    write_atomic(dst, pcm, ENGINE_RATE, subtype="PCM_16", mode=mode)
    return PromptInfo(
        path=os.fspath(dst),
        duration=len(pcm) / ENGINE_RATE,
        source_rate=int(rate),
        source_channels=int(info.channels),
        source_format=info.format,
        source_subtype=info.subtype,
        clipped_samples=clipped,
        peak_dbfs=20 * math.log10(peak / 32768.0) if peak else -math.inf,
    )


def is_engine_format(path: str | os.PathLike[str]) -> bool:
    """True if the file is already 8 kHz mono 16-bit PCM WAV (no conversion needed)."""
    try:
        info = sf.info(os.fspath(path))
    except Exception:
        return False
    return bool(
        info.format == "WAV" and info.subtype == "PCM_16" and info.channels == 1 and info.samplerate == ENGINE_RATE
    )
