"""media.recording: stereo merge (aligned, atomic, 0640, sha256) and crash repair."""

from __future__ import annotations

import hashlib
import stat
import struct

import numpy as np
import pytest
import soundfile as sf

from media.recording import RecordingError, merge_stereo, repair_dir, repair_wav, sha256_file, write_atomic

RATE = 8000


def tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def write_mono(path, data, rate=RATE):
    sf.write(str(path), data, rate, subtype="PCM_16")
    return path


def test_merge_caller_left_callee_right(tmp_path):
    a = write_mono(tmp_path / "caller.wav", tone(440, 2.0))
    b = write_mono(tmp_path / "callee.wav", tone(1000, 1.5))
    out = tmp_path / "day" / "call.wav"
    info = merge_stereo(a, b, out)
    data, rate = sf.read(str(out), dtype="int16")
    assert rate == RATE and data.shape == (16000, 2)
    assert np.array_equal(data[:, 0], tone(440, 2.0))
    assert np.array_equal(data[:12000, 1], tone(1000, 1.5))
    assert not data[12000:, 1].any()  # shorter side padded with silence at the end
    assert info.frames == 16000 and info.duration == pytest.approx(2.0)
    assert info.left_frames == 16000 and info.right_frames == 12000
    assert info.channels == 2 and info.samplerate == RATE
    assert info.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() == sha256_file(out)
    assert info.size == out.stat().st_size
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in out.parent.iterdir()] == ["call.wav"]  # no temp file left


def test_merge_is_sample_aligned(tmp_path):
    clicks = np.zeros(8000, dtype=np.int16)
    clicks[[100, 4321, 7999]] = 20000
    a = write_mono(tmp_path / "a.wav", clicks)
    b = write_mono(tmp_path / "b.wav", clicks)
    merge_stereo(a, b, tmp_path / "o.wav")
    d, _ = sf.read(str(tmp_path / "o.wav"), dtype="int16")
    assert list(np.nonzero(d[:, 0])[0]) == list(np.nonzero(d[:, 1])[0]) == [100, 4321, 7999]


def test_merge_missing_side_is_silence(tmp_path):
    a = write_mono(tmp_path / "a.wav", tone(300, 1.0))
    info = merge_stereo(a, tmp_path / "missing.wav", tmp_path / "o.wav")
    d, _ = sf.read(str(tmp_path / "o.wav"), dtype="int16")
    assert d.shape == (8000, 2) and not d[:, 1].any() and d[:, 0].any()
    assert info.right_frames == 0


def test_merge_nothing_at_all(tmp_path):
    with pytest.raises(RecordingError):
        merge_stereo(None, None, tmp_path / "o.wav")
    info = merge_stereo(None, None, tmp_path / "o.wav", samplerate=RATE)
    assert info.frames == 0


def test_merge_rate_mismatch(tmp_path):
    a = write_mono(tmp_path / "a.wav", tone(300, 1.0))
    b = write_mono(tmp_path / "b.wav", tone(300, 1.0), rate=16000)
    with pytest.raises(RecordingError, match="rates differ"):
        merge_stereo(a, b, tmp_path / "o.wav")


def test_merge_remove_sources(tmp_path):
    a = write_mono(tmp_path / "a.wav", tone(300, 0.5))
    b = write_mono(tmp_path / "b.wav", tone(600, 0.5))
    merge_stereo(a, b, tmp_path / "o.wav", remove_sources=True)
    assert not a.exists() and not b.exists() and (tmp_path / "o.wav").exists()


def test_merge_repairs_unfinished_side(tmp_path):
    a = write_mono(tmp_path / "a.wav", tone(300, 1.0))
    b = write_mono(tmp_path / "b.wav", tone(600, 1.0))
    raw = bytearray(b.read_bytes())
    raw[4:8] = b"\0\0\0\0"
    raw[40:44] = b"\0\0\0\0"
    b.write_bytes(bytes(raw))
    info = merge_stereo(a, b, tmp_path / "o.wav")
    assert info.right_frames == 8000


def test_write_atomic_leaves_old_file_on_failure(tmp_path):
    out = tmp_path / "x.wav"
    write_atomic(out, tone(300, 0.1), RATE)
    before = out.read_bytes()
    with pytest.raises(sf.LibsndfileError):  # libsndfile rejects the samplerate
        write_atomic(out, np.zeros((10, 2), dtype=np.int16), -5)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def crashed_copy(tmp_path, seconds=1.0, extra=b"", name="crash.wav"):
    """A WAV as a writer killed mid-call leaves it: header sizes 0, maybe a half sample."""
    good = write_mono(tmp_path / ("good-" + name), tone(500, seconds))
    raw = bytearray(good.read_bytes())
    assert raw[36:40] == b"data"
    raw[4:8] = struct.pack("<I", 0)
    raw[40:44] = struct.pack("<I", 0)
    p = tmp_path / name
    p.write_bytes(bytes(raw) + extra)
    return p, good


def test_repair_zero_sizes_and_partial_sample(tmp_path):
    p, good = crashed_copy(tmp_path, 1.0, extra=b"\x01")
    res = repair_wav(p)
    assert res.repaired and res.frames == 8000 and res.dropped_bytes == 1
    assert res.duration == pytest.approx(1.0) and res.samplerate == RATE and res.channels == 1
    assert p.read_bytes() == good.read_bytes()
    d, _ = sf.read(str(p), dtype="int16")
    assert np.array_equal(d, tone(500, 1.0))


def test_repair_stale_sizes(tmp_path):
    p, good = crashed_copy(tmp_path, 2.0)
    raw = bytearray(p.read_bytes())
    raw[40:44] = struct.pack("<I", 800)  # header written early, data kept flowing
    p.write_bytes(bytes(raw))
    assert repair_wav(p).frames == 16000
    assert p.read_bytes() == good.read_bytes()


def test_repair_header_only(tmp_path):
    p, _ = crashed_copy(tmp_path, 0.0)
    res = repair_wav(p)
    assert res.frames == 0
    assert sf.info(str(p)).frames == 0


def test_repair_good_file_untouched(tmp_path):
    p = write_mono(tmp_path / "ok.wav", tone(500, 0.5))
    before = p.read_bytes()
    res = repair_wav(p)
    assert not res.repaired and res.frames == 4000
    assert p.read_bytes() == before


def test_repair_stereo_block_align(tmp_path):
    p = tmp_path / "st.wav"
    sf.write(str(p), np.zeros((100, 2), dtype=np.int16) + 7, RATE, subtype="PCM_16")
    raw = bytearray(p.read_bytes()) + b"\x01\x02\x03"  # 3 bytes of a 4-byte frame
    raw[40:44] = b"\0\0\0\0"
    p.write_bytes(bytes(raw))
    res = repair_wav(p)
    assert res.frames == 100 and res.dropped_bytes == 3 and res.channels == 2


@pytest.mark.parametrize("content", [b"", b"RIFF", b"RIFF\0\0\0\0WAVE", b"OggS" + b"\0" * 60, b"RIFF\0\0\0\0WAVEfmt "])
def test_repair_hopeless(tmp_path, content):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(RecordingError):
        repair_wav(p)


def test_repair_dir(tmp_path):
    p, _ = crashed_copy(tmp_path, 0.5, name="a.wav")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "junk.wav").write_bytes(b"junk")
    results = repair_dir(tmp_path)
    assert any(r.path == str(p) and r.repaired for r in results)
    assert all("junk" not in r.path for r in results)
