"""The one mp4 writer: RGB frames (+ optional sound) -> H.264/AAC mp4, written atomically.

Every renderer hands its frames here (landmark videos, side-by-side comparisons, the replication
toolkit's video + prediction panels, and the pixel renderers to come), so they all share one
encoding, one audio path and one atomicity guarantee. Nothing here knows about faces.

Typical use, e.g. a renderer producing frames lazily::

    from tf_talkface.viz.video_io import write_video

    frames = (render(i) for i in range(n))          # each uint8 (H, W, 3) RGB
    write_video("out/talking.mp4", frames, fps=25, audio=waveform, sample_rate=16000,
                n_frames=n)

Encoding: libx264 yuv420p at ``fps`` (imageio-ffmpeg's bundled ffmpeg, ``-movflags +faststart``);
audio AAC from a temporary WAV that starts at t = 0 with the first frame. The audio is never cut
or padded (no ``-shortest``): a longer sound track plays on over the last frame.
"""
from __future__ import annotations

import errno
import math
import numbers
import os
import secrets
import shutil
import tempfile
from itertools import chain
from pathlib import Path
from typing import Iterable

import numpy as np

from tf_talkface.atomic import atomic_output
from tf_talkface.audio.io import AudioError, load_audio, media_info, write_wav
from tf_talkface.config import FPS

__all__ = ["AAC_RATES", "X264_PRESETS", "write_video", "write_png"]

AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200,
             96000)
"""Sample rates (Hz) AAC encodes as they are; others are resampled to the next one up."""


def _temp_name(path: Path, suffix: str) -> str:
    """A fresh hidden temp name beside ``path`` (not created, so the writer creates the file
    with the usual permissions)."""
    return str(path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"))


def _audio_to_wav(audio, sample_rate, tmpdir: str) -> tuple[str | None, int | None]:
    """Write ``audio`` (path or waveform) as a WAV in ``tmpdir``: (wav path, rate) or (None, None)."""
    if audio is None:
        return None, None
    if isinstance(audio, (str, os.PathLike)):
        info = media_info(audio)
        if not info["has_audio"]:
            raise AudioError(f"{audio}: has no audio stream")
        sr = int(sample_rate) if sample_rate is not None else info["audio_sample_rate"]
        if not sr:
            raise AudioError(f"{audio}: ffmpeg did not report the audio sample rate")
        y = load_audio(audio, sr)
    else:
        if sample_rate is None:
            raise ValueError("sample_rate (Hz) is required when audio is a waveform array")
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        sr = int(sample_rate)
        y = np.asarray(audio)
        if y.ndim not in (1, 2) or y.shape[0] == 0:
            raise ValueError(
                f"audio waveform must have shape (samples,) or (samples, channels) with "
                f"samples > 0, got {y.shape}")
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise ValueError(f"audio waveform must be real numbers, got dtype {y.dtype}")
        if np.issubdtype(y.dtype, np.floating):
            if not np.all(np.isfinite(y)):
                raise ValueError("audio waveform contains NaN or Inf")
            y = np.clip(y, -1.0, 1.0).astype(np.float32)
    wav = os.path.join(tmpdir, "audio.wav")
    write_wav(wav, y, sr)
    return wav, sr


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")
"""libx264 speed presets (``write_video(preset=...)``)."""


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = FPS,
                audio=None, sample_rate: int | None = None, n_frames: int | None = None,
                progress: bool = False, preset: str | None = None) -> Path:
    """Encode RGB frames (and optionally a sound track) into an H.264/AAC mp4, atomically.

    The video is libx264 yuv420p at ``fps`` frames per second: it lasts ``len(frames) / fps``
    seconds and every frame is kept, in order. ``frames`` is consumed once, lazily (one frame in
    memory at a time), so it can be a generator. Odd widths/heights are padded by one pixel
    (edge copy) to even, as yuv420p needs. The audio is written to a temporary WAV that starts
    at t = 0 and is encoded as AAC (at the next rate of :data:`AAC_RATES` if its rate is not
    one); it is not cut or padded, so the container lasts as long as the longer of the two
    streams.

    Atomic: the file is written to a temporary ``.<name>.<random>.tmp.mp4`` in the destination
    folder and moved over ``path`` with ``os.replace`` only when complete and probed (it has the
    video stream, and the audio stream when ``audio`` was given). On any error (including an
    exception raised by ``frames``) no file is left at ``path`` (an existing one is untouched)
    and the temporary files are removed.

    Args:
        path: destination, must end in ``.mp4``; parent folders are created.
        frames: iterable of ``uint8`` ``(H, W, 3)`` RGB images (H, W >= 1 pixels), all the same
            shape; at least one.
        fps: frames per second, a positive number (25 = :data:`tf_talkface.config.FPS`).
        audio: ``None`` (silent video); a path to any audio or video file ffmpeg reads (its
            first audio stream, mixed down to mono; decoded at ``sample_rate`` Hz if given, else
            at its own rate); or a waveform array ``(samples,)`` or ``(samples, channels)`` at
            ``sample_rate`` Hz: float in [-1, 1] (clipped; NaN/Inf refused) or integer PCM.
        sample_rate: Hz, a positive integer; required with a waveform.
        n_frames: number of frames, only for the progress bar's total.
        progress: show a tqdm progress bar (frames).
        preset: libx264 speed preset (:data:`X264_PRESETS`); ``None`` = libx264's default
            (``medium``). At 1920x1080 on the 2-core development CPU ``veryfast`` encodes
            ~1.8x as fast as ``medium`` (63 vs 34 fps) at a similar size for mostly static
            content (the talking photo uses it).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: bad path suffix, fps, preset, frames (none, wrong dtype/shape, changing
            shape) or waveform/sample_rate.
        tf_talkface.audio.io.AudioError: the audio file is missing, unreadable or has no audio.
        RuntimeError: ffmpeg did not produce a readable mp4.
    """
    import imageio_ffmpeg
    from tqdm import tqdm

    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{path}: the video path must end in .mp4")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    fps = int(fps) if float(fps).is_integer() else float(fps)
    if preset is not None and preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, ".tmp.mp4")
    writer = None
    count = 0
    try:
        with tempfile.TemporaryDirectory(prefix="tf_talkface_video_") as tmpdir:
            wav, sr = _audio_to_wav(audio, sample_rate, tmpdir)
            it = iter(frames)
            first = next(it, None)
            if first is None:
                raise ValueError("write_video got no frames")
            shape = np.shape(first)
            if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
                raise ValueError(f"frames must be uint8 (H, W, 3) RGB images, got shape {shape}")
            h, w = shape[:2]
            pad_h, pad_w = h % 2, w % 2
            output_params = ["-movflags", "+faststart"] + (["-preset", preset] if preset else [])
            if sr is not None and sr not in AAC_RATES:
                output_params += ["-ar", str(min([r for r in AAC_RATES if r >= sr] or [96000]))]
            writer = imageio_ffmpeg.write_frames(
                tmp, (w + pad_w, h + pad_h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                quality=7, macro_block_size=2, ffmpeg_log_level="error",
                output_params=output_params, audio_path=wav,
                audio_codec="aac" if wav else None)
            writer.send(None)
            bar = tqdm(chain([first], it), total=n_frames, unit="frame", desc=path.name,
                       disable=not progress, leave=False)
            for frame in bar:
                frame = np.asarray(frame)
                if frame.shape != shape or frame.dtype != np.uint8:
                    raise ValueError(
                        f"frame {count} has shape {frame.shape} and dtype {frame.dtype}; all "
                        f"frames must be uint8 with the first frame's shape {shape}")
                if pad_h or pad_w:
                    frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                writer.send(np.ascontiguousarray(frame))
                count += 1
            writer.close()
            writer = None
        try:
            info = media_info(tmp)
        except AudioError as e:
            if shutil.disk_usage(path.parent).free < 1 << 20:  # ffmpeg ran out of disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise RuntimeError(f"{path}: ffmpeg did not produce a readable mp4 ({e})") from None
        if not info["has_video"] or (audio is not None and not info["has_audio"]):
            raise RuntimeError(f"{path}: ffmpeg's mp4 lacks the video or the audio stream: {info}")
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write one ``uint8`` ``(H, W, 3)`` RGB image as a PNG, atomically (temp file + rename).

    Args:
        path: destination (``.png``); parent folders are created.
        image: ``uint8`` ``(H, W, 3)`` RGB.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: ``image`` is not ``uint8`` ``(H, W, 3)``.
        OSError: the PNG could not be written.
    """
    import cv2

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 (H, W, 3) RGB array, got {img.shape} {img.dtype}")
    path = Path(path)
    with atomic_output(path, ".tmp.png") as tmp:
        if not cv2.imwrite(tmp, cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: OpenCV could not write the PNG")
    return path
