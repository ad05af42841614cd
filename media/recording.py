"""Recording post-processing: per-party mono WAVs -> one stereo WAV, and crash repair.

The worker records each party of a call to its own mono WAV (8 kHz, 16-bit PCM), all
recorders connected on the same conference tick, so the files are sample-aligned from
their first sample. :func:`merge_stereo` puts the caller on the left channel and the
callee on the right, pads the shorter file with silence at its end, and writes the
result atomically (temporary file in the same directory, fsync, rename) with mode 0640.

:func:`repair_wav` fixes a WAV whose writer died before finalising its header (RIFF and
data chunk sizes still 0 or stale, maybe a half sample at the end): the sizes are set
from what is actually on disk, so every complete sample is kept.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

RECORDING_MODE = 0o640


class RecordingError(Exception):
    pass


@dataclass(frozen=True)
class RecordingInfo:
    path: str
    duration: float  # seconds
    samplerate: int
    channels: int
    frames: int
    sha256: str
    size: int  # bytes
    left_frames: int = 0
    right_frames: int = 0


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_mono(path: str | os.PathLike[str] | None) -> tuple[np.ndarray, int | None]:
    if path is None or not os.path.exists(path) or os.path.getsize(path) <= 44:
        return np.zeros(0, dtype=np.int16), None
    try:
        repair_wav(path)  # no-op on a finished file; fixes one left by a crash
    except RecordingError:
        pass
    data, rate = sf.read(os.fspath(path), dtype="int16", always_2d=True)
    if data.shape[1] != 1:
        data = data.mean(axis=1).astype(np.int16)[:, None]
    return data[:, 0], rate


def write_atomic(
    path: str | os.PathLike[str],
    data: np.ndarray,
    samplerate: int,
    subtype: str = "PCM_16",
    mode: int = RECORDING_MODE,
    format: str = "WAV",
) -> None:
    """Write audio to ``path`` via a temp file in the same directory + fsync + rename."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1] or ".wav", dir=d)
    os.close(fd)
    try:
        # by path, not through a Python file object: a full disk is then one error from
        # libsndfile, not "Exception ignored from cffi callback" tracebacks on stderr
        try:
            sf.write(tmp, data, samplerate, subtype=subtype, format=format)
        except sf.LibsndfileError as exc:
            st = os.statvfs(d)
            if st.f_bavail * st.f_frsize < data.nbytes:  # the disk is full: say so
                raise OSError(errno.ENOSPC, f"cannot write {path}: no space left ({exc})") from None
            raise
        if sf.info(tmp).frames != len(data):  # a short write (no space left) not reported
            raise OSError(errno.ENOSPC, f"cannot write {path}: short write", path)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def merge_stereo(
    left: str | os.PathLike[str] | None,
    right: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    samplerate: int | None = None,
    remove_sources: bool = False,
    mode: int = RECORDING_MODE,
) -> RecordingInfo:
    """Caller's mono WAV (left) + callee's mono WAV (right) -> stereo WAV ``out``.

    A missing or empty side becomes silence. Both sides must have the same sample rate.
    """
    left_pcm, lr = _read_mono(left)
    right_pcm, rr = _read_mono(right)
    rates = {x for x in (lr, rr) if x}
    if len(rates) > 1:
        raise RecordingError(f"sample rates differ: {sorted(rates)}")
    rate = rates.pop() if rates else samplerate
    if rate is None:
        raise RecordingError("both sides are missing or empty and no samplerate was given")
    n = max(len(left_pcm), len(right_pcm))
    stereo = np.zeros((n, 2), dtype=np.int16)
    stereo[: len(left_pcm), 0] = left_pcm
    stereo[: len(right_pcm), 1] = right_pcm
    write_atomic(out, stereo, rate, mode=mode)
    if remove_sources:
        for p in (left, right):
            if p is not None and os.path.exists(p):
                os.unlink(p)
    return RecordingInfo(
        path=os.fspath(out),
        duration=n / rate,
        samplerate=rate,
        channels=2,
        frames=n,
        sha256=sha256_file(out),
        size=os.path.getsize(out),
        left_frames=len(left_pcm),
        right_frames=len(right_pcm),
    )


@dataclass(frozen=True)
class RepairResult:
    path: str
    repaired: bool  # False: the header was already right
    frames: int  # complete frames now in the file
    duration: float
    samplerate: int
    channels: int
    dropped_bytes: int  # partial frame bytes cut from the end


def repair_wav(path: str | os.PathLike[str]) -> RepairResult:
    """Make a WAV left unfinished by a crash valid again; returns what was recovered.

    Raises RecordingError if the file has no usable RIFF/WAVE header and fmt chunk.
    """
    path = os.fspath(path)
    with open(path, "r+b") as f:
        raw = f.read(4096)
        size = os.fstat(f.fileno()).st_size
        if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
            raise RecordingError(f"{path}: not a RIFF/WAVE file")
        pos = 12
        fmt = None
        data_off = None
        data_size_pos = None
        while pos + 8 <= len(raw):
            cid, csize = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
            if cid == b"fmt ":
                if pos + 8 + 16 > len(raw):
                    break
                fmt = struct.unpack("<HHIIHH", raw[pos + 8 : pos + 24])
            elif cid == b"data":
                data_size_pos = pos + 4
                data_off = pos + 8
                break
            pos += 8 + csize + (csize & 1)
        if fmt is None or data_off is None or data_size_pos is None:
            raise RecordingError(f"{path}: no fmt/data chunk header, nothing recoverable")
        _tag, channels, rate, _bps, block_align, _bits = fmt
        if channels < 1 or rate < 1 or block_align < 1:
            raise RecordingError(f"{path}: corrupt fmt chunk")
        payload = max(0, size - data_off)
        whole = payload - payload % block_align
        dropped = payload - whole
        old_riff = struct.unpack("<I", raw[4:8])[0]
        old_data = struct.unpack("<I", raw[data_size_pos : data_size_pos + 4])[0]
        new_riff = data_off + whole - 8
        repaired = dropped > 0 or old_riff != new_riff or old_data != whole
        if repaired:
            if dropped:
                f.truncate(data_off + whole)
            f.seek(4)
            f.write(struct.pack("<I", new_riff))
            f.seek(data_size_pos)
            f.write(struct.pack("<I", whole))
            f.flush()
            os.fsync(f.fileno())
    frames = whole // block_align
    return RepairResult(
        path=path,
        repaired=repaired,
        frames=frames,
        duration=frames / rate,
        samplerate=rate,
        channels=channels,
        dropped_bytes=dropped,
    )


def recorded_seconds(path: str | os.PathLike[str]) -> float:
    """How much audio a WAV holds judging by its size (read-only; works on a file whose
    header a crash left unfinished): the last media activity it shows."""
    with open(path, "rb") as f:
        raw = f.read(4096)
        size = os.fstat(f.fileno()).st_size
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise RecordingError(f"{os.fspath(path)}: not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(raw):
        cid, csize = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and pos + 24 <= len(raw):
            fmt = struct.unpack("<HHIIHH", raw[pos + 8 : pos + 24])
        elif cid == b"data" and fmt is not None:
            rate, block_align = fmt[2], fmt[4]
            if rate < 1 or block_align < 1:
                break
            return float((max(0, size - (pos + 8)) // int(block_align)) / int(rate))
        pos += 8 + csize + (csize & 1)
    raise RecordingError(f"{os.fspath(path)}: no fmt/data chunk header")


def repair_files(paths: list[str] | list[Path]) -> list[RepairResult]:
    """Repair exactly these WAVs (one call's party files after its worker died); missing
    or hopeless files are skipped. Never touches any other file."""
    out = []
    for p in paths:
        try:
            if os.path.exists(p):
                out.append(repair_wav(p))
        except (RecordingError, OSError):
            continue
    return out


def repair_dir(directory: str | os.PathLike[str], pattern: str = "*.wav") -> list[RepairResult]:
    """Repair every WAV under ``directory`` (at start-up, after a crash); skips hopeless ones."""
    out = []
    for p in sorted(Path(directory).rglob(pattern)):
        try:
            out.append(repair_wav(p))
        except (RecordingError, OSError):
            continue
    return out
