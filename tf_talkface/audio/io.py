"""Audio input/output: decode any audio or video file to a mono float waveform, write WAV files.

Decoding runs the ffmpeg binary shipped by ``imageio-ffmpeg`` (:func:`tf_talkface.resources.ffmpeg_exe`)
in a subprocess, so every container and codec ffmpeg knows works (wav, flac, mp3, ogg, m4a, the
AAC track of an mp4, the MP2 track of a GRID mpg, ...). Resampling uses ``librosa.resample`` with
``res_type="soxr_hq"``.

Source (reference.md): the 2018 code decoded with ffmpeg to 44.1 kHz and read the result with
``librosa.load``; the 2020 code used ``librosa.load(sr=8000)``. We decode at the file's native
rate and resample once with soxr, so there is a single resampling step whatever the input.
"""
from __future__ import annotations

import os
import re
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tf_talkface.resources import ffmpeg_exe, check_input_file

__all__ = ["AudioError", "AudioWarning", "load_audio", "media_info", "rms_dbfs", "is_silent", "write_wav"]


class AudioWarning(UserWarning):
    """The audio decoded, but not all of it: a truncated or damaged file (the message names the
    file, the decoded and the declared duration). The CLIs print it as one line."""


class AudioError(ValueError):
    """An audio file could not be read: missing, no audio stream, undecodable, or empty.

    The message always names the file and the problem.
    """


_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM_RE = re.compile(r"Stream #\d+:\d+[^:]*:\s*(Audio|Video):\s*(.*)")
_RATE_RE = re.compile(r"(\d+)\s*Hz")
_FPS_RE = re.compile(r"([\d.]+)\s*fps")


def _input_section(stderr: str) -> str:
    """The part of ffmpeg's log that describes the input (before the output/mapping section)."""
    for marker in ("Stream mapping:", "Output #0"):
        i = stderr.find(marker)
        if i >= 0:
            stderr = stderr[:i]
    return stderr


def _parse_info(stderr: str) -> dict[str, Any]:
    text = _input_section(stderr)
    info: dict[str, Any] = {
        "has_audio": False,
        "has_video": False,
        "audio_sample_rate": None,
        "audio_channels": None,
        "audio_codec": None,
        "video_fps": None,
        "duration_s": None,
    }
    m = _DURATION_RE.search(text)
    if m:
        h, mi, s = m.groups()
        info["duration_s"] = int(h) * 3600 + int(mi) * 60 + float(s)
    for kind, desc in _STREAM_RE.findall(text):
        if kind == "Audio" and not info["has_audio"]:
            info["has_audio"] = True
            parts = [p.strip() for p in desc.split(",")]
            info["audio_codec"] = parts[0].split()[0] if parts and parts[0] else None
            r = _RATE_RE.search(desc)
            info["audio_sample_rate"] = int(r.group(1)) if r else None
            # channel layout is the field after the rate, e.g. "mono", "stereo", "5.1(side)"
            for i, p in enumerate(parts):
                if _RATE_RE.fullmatch(p) and i + 1 < len(parts):
                    info["audio_channels"] = parts[i + 1]
                    break
        elif kind == "Video" and not info["has_video"]:
            # attached pictures (cover art) are not video streams for our purpose
            if "attached pic" in desc:
                continue
            info["has_video"] = True
            f = _FPS_RE.search(desc)
            info["video_fps"] = float(f.group(1)) if f else None
    return info


def _last_error_lines(stderr: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    # drop ffmpeg's own "usage" noise
    lines = [ln for ln in lines if "At least one output file must be specified" not in ln]
    return " | ".join(lines[-n:]) if lines else "no message from ffmpeg"


def _check_file(path: Path) -> None:
    check_input_file(path, AudioError)


def media_info(path: str | os.PathLike) -> dict[str, Any]:
    """Probe a media file with ffmpeg (header only; nothing is decoded).

    Returns:
        dict with ``has_audio`` (bool), ``has_video`` (bool), ``audio_sample_rate`` (Hz or None),
        ``audio_channels`` (ffmpeg's layout name such as ``"mono"``/``"stereo"``, or None),
        ``audio_codec`` (str or None), ``video_fps`` (float or None) and ``duration_s``
        (container duration in seconds, or None) — all of the first audio / video stream.

    Raises:
        AudioError: the file is missing or empty, or ffmpeg cannot open it.
    """
    path = Path(path)
    _check_file(path)
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if "Input #0" not in stderr:
        raise AudioError(f"{path}: ffmpeg cannot open it ({_last_error_lines(stderr)})")
    return _parse_info(stderr)


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream of any audio or video file to a mono waveform.

    ffmpeg decodes ``-i path -vn -map 0:a:0 -ac 1 -f f32le -`` at the stream's native rate; the
    native rate is read from ffmpeg's log of the same run. Channels are averaged (``-ac 1`` with
    ``-rematrix_maxval 1``; without the latter ffmpeg's float downmix of stereo is (L+R)/sqrt(2),
    not the (L+R)/2 of ``librosa.load``). The result is then resampled to ``sample_rate`` with
    ``librosa.resample(res_type="soxr_hq")`` when the native rate differs, and clipped to
    [-1, 1] (lossy decoders and resampling may overshoot slightly; ``librosa.load`` did not clip).

    Args:
        path: any file ffmpeg reads (wav, flac, mp3, ogg, m4a, mp4, mpg, avi, ...).
        sample_rate: output rate in Hz (e.g. 44100 for the 2018 features, 8000 for 2020).

    Returns:
        float32 array of shape (samples,), values in [-1, 1]. A GRID s1 clip (75 video frames; its audio
        track is 2.978 s) gives 131328 samples at 44.1 kHz. The length at another rate is
        ``ceil(n_native * sample_rate / native_rate)`` (librosa.resample's rule).

    Raises:
        AudioError: missing or empty file, no audio stream, undecodable/corrupt data, NaN/Inf
            samples, or zero decoded samples. The message names the file and the problem.

    Warns:
        AudioWarning: less audio decoded than the file declares (a truncated file).
        ValueError: ``sample_rate`` is not a positive integer.
    """
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    sample_rate = int(sample_rate)
    path = Path(path)
    _check_file(path)
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats",
        "-i", str(path),
        "-vn", "-sn", "-dn", "-map", "0:a:0",
        "-ac", "1", "-rematrix_maxval", "1.0",
        "-f", "f32le", "-acodec", "pcm_f32le", "-",
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if "Input #0" not in stderr:
        raise AudioError(f"{path}: not a readable audio or video file ({_last_error_lines(stderr)})")
    info = _parse_info(stderr)
    if not info["has_audio"]:
        what = "video file" if info["has_video"] else "file"
        raise AudioError(f"{path}: {what} has no audio stream")
    if proc.returncode != 0:
        raise AudioError(
            f"{path}: could not decode the audio stream "
            f"(ffmpeg exit {proc.returncode}: {_last_error_lines(stderr)})")
    native_sr = info["audio_sample_rate"]
    if not native_sr:
        raise AudioError(f"{path}: ffmpeg did not report the audio sample rate")
    nbytes = len(proc.stdout) - len(proc.stdout) % 4
    y = np.frombuffer(proc.stdout[:nbytes], dtype="<f4").astype(np.float32)
    if y.size == 0:
        raise AudioError(f"{path}: audio stream decoded to zero samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: decoded audio contains NaN or Inf values")
    # the container's duration is the audio's only without a video stream (a video's sound may
    # legitimately end early; prepare checks that itself)
    declared, decoded = info.get("duration_s"), y.size / native_sr
    if declared and not info["has_video"] and decoded < declared - max(0.5, 0.05 * declared):
        warnings.warn(f"{path}: only {decoded:.2f} s of audio decoded of the {declared:.2f} s the "
                      "file declares (truncated or damaged?); animating what decoded",
                      AudioWarning, stacklevel=2)
    if native_sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=native_sr, target_sr=sample_rate, res_type="soxr_hq")
        y = np.asarray(y, dtype=np.float32)
        if y.size == 0:
            raise AudioError(f"{path}: audio too short to resample to {sample_rate} Hz")
    return np.clip(y, -1.0, 1.0).astype(np.float32, copy=False)


def rms_dbfs(y: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (a full-scale square wave = 0 dBFS).

    Returns ``-inf`` for an empty or all-zero signal.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return float("-inf")
    ms = float(np.mean(y * y))
    return 10.0 * float(np.log10(ms)) if ms > 0 else float("-inf")


def is_silent(y: np.ndarray, threshold_dbfs: float = -60.0) -> bool:
    """True when the RMS level of ``y`` is below ``threshold_dbfs`` (dBFS), or ``y`` is empty."""
    return rms_dbfs(y) < threshold_dbfs


def write_wav(path: str | os.PathLike, y: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write a mono (samples,) or multi-channel (samples, channels) WAV file atomically.

    The data goes to a temporary file in the destination folder (so ``os.replace`` is atomic on
    the same filesystem) and is moved over ``path`` only once complete; a crash never leaves a
    half-written file at ``path``.

    Args:
        y: float waveform in [-1, 1] (or integer PCM).
        sample_rate: Hz.
        subtype: soundfile subtype (default: soundfile's default for the dtype, e.g. PCM_16 for
            float input).

    Returns:
        the destination path.
    """
    import soundfile as sf

    from tf_talkface.atomic import atomic_output

    path = Path(path)
    with atomic_output(path, ".tmp.wav") as tmp:
        sf.write(tmp, np.asarray(y), int(sample_rate), subtype=subtype, format="WAV")
    return path
