"""The 2020 raw-waveform input (Eskimez et al. 2020): framing arithmetic, peak scaling, padding.

The numpy twin (:func:`pad_and_scale`) and the TensorFlow twin (:func:`pad_and_scale_tf`) give
the same numbers; the TF one is shared by the ``tf.data`` pipeline, training, the SavedModel and
the streamers. Why the clip is padded this way (1120 zeros in front, only as many as needed at
the end): :mod:`tf_talkface.models.cnn`, whose network reads these windows (it re-exports every
name of this module).

Time/length relations (samples at 8 kHz; frames at 25 fps, hop 320 samples = 40 ms): frame
``k`` is predicted from raw samples ``[320 k - 1120, 320 k + 1120)`` (zeros outside the clip),
i.e. padded samples ``[320 k, 320 k + 2240)``; a raw clip of ``n`` samples has
``ceil(n / 320)`` frames; ``F`` frames need ``320 (F - 1) + 2240`` padded samples.

TensorFlow is imported only by :func:`pad_and_scale_tf`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tf_talkface.audio.level import LevelConfig, normalise_level, normalise_level_tf
from tf_talkface.config import WaveformConfig

if TYPE_CHECKING:  # annotations only
    import tensorflow as tf

__all__ = ["SAMPLE_RATE", "HOP", "WINDOW", "PAD", "frames_for_samples", "samples_for_frames",
           "padded_length", "pad_and_scale", "pad_and_scale_tf"]

_WF = WaveformConfig()
SAMPLE_RATE: int = _WF.sample_rate
"""Waveform sample rate in Hz (8000)."""
HOP: int = _WF.hop
"""Samples per frame (320 = 40 ms at 8 kHz)."""
WINDOW: int = _WF.window
"""Samples per input window (2240 = 7 frames = 280 ms)."""
PAD: int = WINDOW // 2
"""Zeros prepended (and at most appended) to a clip: 1120 samples."""


def frames_for_samples(n_samples: int) -> int:
    """Frames of a raw (unpadded) clip of ``n_samples`` samples at 8 kHz: ``ceil(n / 320)``.

    Frame ``k`` is centred on raw sample ``320 k``; every such centre inside the clip counts.
    24000 samples (3 s) -> 75 frames. Inverse of :func:`samples_for_frames` on multiples of 320.

    Raises:
        ValueError: ``n_samples < 0``.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    return -(-int(n_samples) // HOP)


def samples_for_frames(n_frames: int) -> int:
    """Raw (unpadded) samples spanned by ``n_frames`` frames: ``320 * n_frames`` (75 -> 24000).

    Raises:
        ValueError: ``n_frames < 0``.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    return HOP * int(n_frames)


def padded_length(n_frames: int) -> int:
    """Network input length (padded samples) for ``n_frames`` outputs: ``320 (F - 1) + 2240``.

    75 frames -> 25920 samples (= 1120 + 24000 + 800).

    Raises:
        ValueError: ``n_frames < 1``.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    return HOP * (int(n_frames) - 1) + WINDOW


def _scale_np(x: np.ndarray, peak: float | None = None,
              level: LevelConfig | None = None) -> np.ndarray:
    if level is not None and level.mode != "peak":
        if peak is not None:
            raise ValueError("peak and a loudness level normalisation exclude each other")
        return normalise_level(x, SAMPLE_RATE, level)
    if peak is not None:
        if not peak > 0:
            raise ValueError(f"peak must be > 0, got {peak!r}")
        return (x / float(peak)).astype(np.float32)
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    safe = np.where(peak > 0, peak, 1.0)
    return (x / safe).astype(np.float32)


def pad_and_scale(waveform: np.ndarray, n_frames: int | None = None,
                  peak: float | None = None, level: LevelConfig | None = None) -> np.ndarray:
    """Scale a raw 8 kHz clip by its max |x| and zero-pad it for
    :class:`~tf_talkface.models.cnn.SpeechToLandmarkCNN`.

    Args:
        waveform: float array (samples,) or (batch, samples), raw 8 kHz speech; each row is scaled
            separately. An all-zero row stays zero (no NaN).
        n_frames: output frames wanted; default ``frames_for_samples(samples)`` (``ceil(n/320)``).
            Give the video's frame count to match a landmark sequence; the signal is then cut or
            zero-extended on the right.
        peak: fixed normalisation: divide by ``peak`` instead of the clip's own max |x|
            (``None``, the default: the clip's peak, as the 2020 paper). A stream cannot know the
            whole clip's peak; :class:`tf_talkface.stream.CNNStreamer` uses a fixed one (1.0 =
            full-scale input) and this option gives the same numbers offline.
        level: the input level normalisation (:class:`~tf_talkface.audio.level.LevelConfig`);
            ``None`` or mode ``peak`` is the paper's peak scaling above; ``loudness`` scales
            each clip to a gated active-speech RMS and soft-limits it (issue 11: the mouth no
            longer depends on one loud sample or on the recording level).

    Returns:
        float32 array (..., ``padded_length(n_frames)``): 1120 zeros, the scaled clip, then zeros
        (800..1119 of them when ``n_frames`` is the default). The original pads 1120 on the
        right too; that would add one extra frame (see :mod:`tf_talkface.models.cnn`).

    Raises:
        ValueError: empty waveform with default ``n_frames``, or ``n_frames < 1``, or ndim > 2,
            or ``peak <= 0``.
    """
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"waveform must be (samples,) or (batch, samples), got shape {x.shape}")
    n = x.shape[-1]
    if n_frames is None:
        n_frames = frames_for_samples(n)
    if n_frames < 1:
        raise ValueError(f"need at least one frame (got {n} samples, n_frames={n_frames})")
    total = padded_length(n_frames)
    x = _scale_np(x, peak, level)
    keep = min(n, total - PAD)
    out = np.zeros(x.shape[:-1] + (total,), dtype=np.float32)
    out[..., PAD:PAD + keep] = x[..., :keep]
    return out


def pad_and_scale_tf(waveform: "tf.Tensor", n_frames: "tf.Tensor | int | None" = None,
                     peak: float | None = None, level: LevelConfig | None = None,
                     lengths: "tf.Tensor | None" = None) -> "tf.Tensor":
    """In-graph twin of :func:`pad_and_scale` for ``tf.data`` / serving (same numbers).

    Args:
        waveform: float tensor (samples,) or (batch, samples), raw 8 kHz speech.
        n_frames: scalar int (tensor or Python) or ``None`` for ``ceil(samples / 320)``.
        peak: fixed normalisation (Python float > 0) instead of the clip's max |x| (``None``).
        level: as :func:`pad_and_scale`.
        lengths: int (batch,) true lengths of zero-padded rows (loudness only: the level is
            measured on each row's own samples).

    Returns:
        float32 tensor (..., ``320 (n_frames - 1) + 2240``).

    Raises:
        ValueError: ``peak <= 0``.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(waveform, tf.float32)
    n = tf.shape(x)[-1]
    if n_frames is None:
        n_frames = (n + HOP - 1) // HOP
    n_frames = tf.maximum(tf.cast(n_frames, tf.int32), 1)
    total = HOP * (n_frames - 1) + WINDOW
    if level is not None and level.mode != "peak":
        if peak is not None:
            raise ValueError("peak and a loudness level normalisation exclude each other")
        x = normalise_level_tf(x, SAMPLE_RATE, level, lengths)
    elif peak is None:
        x = tf.math.divide_no_nan(x, tf.reduce_max(tf.abs(x), axis=-1, keepdims=True))
    else:
        if not peak > 0:
            raise ValueError(f"peak must be > 0, got {peak!r}")
        x = x / tf.constant(float(peak), tf.float32)
    keep = tf.minimum(n, total - PAD)
    x = x[..., :keep]
    rank = tf.rank(x)
    paddings = tf.concat([tf.zeros([rank - 1, 2], tf.int32),
                          [[PAD, total - PAD - keep]]], axis=0)
    return tf.pad(x, paddings)
