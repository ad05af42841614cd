"""media.prompts: anything libsndfile reads -> 8 kHz mono 16-bit WAV, or a clear reason."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from media.prompts import PromptError, convert_prompt, is_engine_format, resample


def sine(freq, rate, seconds, amp=0.5, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def dominant_freq(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * rate / len(x)


@pytest.mark.parametrize(
    "rate,subtype,fmt,ext",
    [
        (44100, "PCM_16", "WAV", "wav"),
        (48000, "FLOAT", "WAV", "wav"),  # float: pjsua2 refuses it, so we convert
        (48000, "PCM_24", "WAV", "wav"),  # 24-bit: same
        (16000, "PCM_16", "FLAC", "flac"),
        (22050, "VORBIS", "OGG", "ogg"),
        (8000, "ULAW", "WAV", "wav"),
        (11025, "PCM_U8", "WAV", "wav"),
        (96000, "DOUBLE", "WAV", "wav"),
    ],
)
def test_converts(tmp_path, rate, subtype, fmt, ext):
    src = tmp_path / f"in.{ext}"
    sf.write(str(src), sine(440, rate, 1.0), rate, subtype=subtype, format=fmt)
    dst = tmp_path / "out.wav"
    info = convert_prompt(src, dst)
    d = sf.info(str(dst))
    assert (d.format, d.subtype, d.channels, d.samplerate) == ("WAV", "PCM_16", 1, 8000)
    assert is_engine_format(dst)
    assert info.duration == pytest.approx(1.0, abs=0.01)
    assert info.source_rate == rate and info.source_subtype == subtype
    y, _ = sf.read(str(dst), dtype="float64")
    assert dominant_freq(y, 8000) == pytest.approx(440, abs=3)
    rms = np.sqrt(np.mean(y[800:-800] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)  # level kept


def test_stereo_is_averaged_not_summed(tmp_path):
    src = tmp_path / "st.wav"
    sf.write(str(src), sine(300, 16000, 0.5, amp=0.9, channels=2), 16000, subtype="PCM_16")
    info = convert_prompt(src, tmp_path / "o.wav")
    assert info.source_channels == 2 and info.clipped_samples == 0
    y, _ = sf.read(str(tmp_path / "o.wav"), dtype="float64")
    assert np.max(np.abs(y)) == pytest.approx(0.9, abs=0.02)


def test_hot_float_is_clipped_and_counted(tmp_path):
    src = tmp_path / "hot.wav"
    sf.write(str(src), sine(300, 8000, 0.5, amp=1.5), 8000, subtype="FLOAT")
    info = convert_prompt(src, tmp_path / "o.wav")
    assert info.clipped_samples > 0 and info.peak_dbfs <= 0


def test_no_aliasing_from_high_rate(tmp_path):
    src = tmp_path / "hi.wav"
    sf.write(str(src), sine(6000, 48000, 1.0), 48000, subtype="PCM_16")  # above 4 kHz Nyquist
    convert_prompt(src, tmp_path / "o.wav")
    y, _ = sf.read(str(tmp_path / "o.wav"), dtype="float64")
    assert np.sqrt(np.mean(y**2)) < 0.005


def test_resample_identity_and_length():
    x = np.random.default_rng(1).standard_normal(1000)
    assert np.array_equal(resample(x, 8000, 8000), x)
    assert len(resample(x, 44100, 8000)) == -(-1000 * 80 // 441)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not a readable audio file"),
        (b"hello, I am not audio" * 10, "not a readable audio file"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "not a readable audio file"),
    ],
)
def test_rejects_garbage(tmp_path, content, reason):
    src = tmp_path / "bad.wav"
    src.write_bytes(content)
    with pytest.raises(PromptError, match=reason):
        convert_prompt(src, tmp_path / "o.wav")
    assert not (tmp_path / "o.wav").exists()


def test_rejects_missing(tmp_path):
    with pytest.raises(PromptError, match="no such file"):
        convert_prompt(tmp_path / "nope.wav", tmp_path / "o.wav")


def test_rejects_empty_audio(tmp_path):
    src = tmp_path / "empty.wav"
    sf.write(str(src), np.zeros(0), 8000, subtype="PCM_16")
    with pytest.raises(PromptError, match="no audio"):
        convert_prompt(src, tmp_path / "o.wav")


def test_rejects_too_long(tmp_path):
    src = tmp_path / "long.wav"
    sf.write(str(src), np.zeros(8000 * 3), 8000, subtype="PCM_16")
    with pytest.raises(PromptError, match="longer than"):
        convert_prompt(src, tmp_path / "o.wav", max_seconds=2)


def test_rejects_silly_rate(tmp_path):
    src = tmp_path / "slow.wav"
    sf.write(str(src), np.zeros(1000), 1000, subtype="PCM_16")
    with pytest.raises(PromptError, match="sample rate"):
        convert_prompt(src, tmp_path / "o.wav")


def test_replaces_existing_atomically(tmp_path):
    dst = tmp_path / "o.wav"
    dst.write_bytes(b"old")
    src = tmp_path / "in.wav"
    sf.write(str(src), sine(440, 8000, 0.2), 8000, subtype="PCM_16")
    convert_prompt(src, dst)
    assert is_engine_format(dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "o.wav"]
