"""Eskimez et al. 2018 audio features: one definition, a numpy reference and in-graph Keras layers.

Source: reference.md, "Eskimez et al. 2018 — Audio features" and "Context"; the original code's
``utils.melSpectra`` (log-mel), its feature-extraction script (delta / delta-delta with zero rows
prepended) and ``utils.addContext``.

Pipeline (defaults of :class:`~tf_talkface.config.LogMelConfig`: 44.1 kHz, n_fft = window = hop =
1764 samples = 0.04 s, i.e. one STFT column per 40 ms video frame at 25 fps):

1. ``|STFT|`` with a periodic Hann window, ``center=True`` with **reflect** padding of
   ``n_fft // 2`` samples on both sides, divided by ``1 + n_fft / 2``;
2. squared (power), projected on librosa's default Slaney mel filterbank (``n_mels`` bands,
   fmin 0, fmax sr / 2, Slaney area normalisation);
3. ``log(log_floor + mel)`` (natural log, floor 1e-16);
4. features = concat(first temporal difference with one zero row prepended, second temporal
   difference with two zero rows prepended) -> ``2 * n_mels`` = 128 dims per frame. The static
   log-mel itself is not part of the features.

Frame ``t`` is centred on sample ``t * hop`` (time ``t * 40 ms``); a waveform of ``n`` samples
gives ``1 + n // hop`` frames for the default (even) ``n_fft == hop``.

Where we differ on purpose: the original ran on librosa 0.6 whose ``stft`` padded with
``pad_mode="reflect"``; librosa >= 0.10 pads with zeros ("constant") by default, so we pass
``"reflect"`` explicitly to keep the original numbers.

The numpy functions here are the reference (no TensorFlow import, so data-preparation workers stay
light); :class:`tf_talkface.audio.layers.LogMelDeltas` and ``ContextStack`` compute the same thing
with TensorFlow ops only (no tensorflow-io), so they can live inside SavedModels
served by TF Serving.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tf_talkface.config import LogMelConfig

__all__ = [
    "min_samples",
    "log_mel_spectrogram",
    "delta_features",
    "logmel_delta_features",
    "add_context",
    "mel_basis",
]


def min_samples(cfg: LogMelConfig = LogMelConfig()) -> int:
    """Shortest waveform (samples) the features accept: ``n_fft // 2 + 1`` (reflect padding of
    ``n_fft // 2`` samples needs more samples than the pad)."""
    return cfg.n_fft // 2 + 1


def _check_waveform(y: Any, cfg: LogMelConfig) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got shape {y.shape}")
    if y.shape[0] < min_samples(cfg):
        raise ValueError(
            f"waveform too short: {y.shape[0]} samples; the log-mel features need at least "
            f"{min_samples(cfg)} samples (n_fft // 2 + 1 = {cfg.n_fft} // 2 + 1 at "
            f"{cfg.sample_rate} Hz) for reflect padding")
    y = y.astype(np.float32, copy=False)
    if not np.all(np.isfinite(y)):
        raise ValueError("waveform contains NaN or Inf values")
    return y


def mel_basis(cfg: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """librosa's default (Slaney) mel filterbank used by the features, float32 (n_mels, n_fft//2 + 1).

    ``librosa.feature.melspectrogram(S=...)`` infers ``n_fft = 2 * (bins - 1)`` from the
    spectrogram, so that is the ``n_fft`` given to ``librosa.filters.mel`` here too (equal to
    ``cfg.n_fft`` when it is even, as for every rate with a 40 ms window at a rate divisible by 50).
    """
    import librosa

    n_bins = cfg.n_fft // 2 + 1
    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=2 * (n_bins - 1), n_mels=cfg.n_mels).astype(np.float32)


def log_mel_spectrogram(y: np.ndarray, cfg: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Natural-log mel spectrogram exactly as the original ``utils.melSpectra`` (transposed).

    ``np.log(cfg.log_floor + melspectrogram(S=(|stft(y)| / (1 + n_fft/2))**2, n_mels))`` with
    ``librosa.stft(n_fft=win_length=cfg.n_fft, hop_length=cfg.hop_length, window="hann",
    center=True, pad_mode="reflect")``. ``pad_mode="reflect"`` is explicit because it was the
    default of librosa 0.6 (used by the original) but librosa 0.11 defaults to "constant".

    Args:
        y: mono waveform (samples,) at ``cfg.sample_rate`` Hz, values in [-1, 1]; cast to float32
            as ``librosa.load`` returned it to the original code.
        cfg: feature settings.

    Returns:
        float32 (frames, n_mels), frames = ``1 + (len(y) + 2*(n_fft//2) - n_fft) // hop``
        (= ``1 + len(y) // hop`` for even n_fft), one frame per 40 ms with the defaults.

    Raises:
        ValueError: ``y`` is not 1-D, shorter than :func:`min_samples`, or not finite.
    """
    import librosa

    y = _check_waveform(y, cfg)
    n_fft, hop = cfg.n_fft, cfg.hop_length
    mag = np.abs(librosa.stft(y, n_fft=n_fft, win_length=n_fft, hop_length=hop, center=True,
                              pad_mode="reflect", window="hann")) / (1 + n_fft / 2)
    mel = librosa.feature.melspectrogram(sr=cfg.sample_rate, S=mag ** 2, n_mels=cfg.n_mels)
    return np.log(cfg.log_floor + mel).T.astype(np.float32)


def delta_features(logmel: np.ndarray) -> np.ndarray:
    """Delta and delta-delta of a (frames, n_mels) log-mel, each keeping one row per frame.

    ``concat(insert(diff(x, n=1), 1 zero row at the top), insert(diff(x, n=2), 2 zero rows at the
    top))`` along the feature axis, as the original feature extraction. With fewer than 3
    frames the delta-delta is all zeros (cut to ``frames`` rows; the original would fail).

    Returns:
        float32 (frames, 2 * n_mels): row 0 is all zeros, row 1 is zero in the second half.
    """
    x = np.asarray(logmel, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a (frames, n_mels) array, got shape {x.shape}")
    t, d = x.shape
    d1 = np.concatenate([np.zeros((1, d), np.float32), np.diff(x, n=1, axis=0)], axis=0)[:t]
    d2 = np.concatenate([np.zeros((2, d), np.float32), np.diff(x, n=2, axis=0)], axis=0)[:t]
    return np.concatenate([d1, d2], axis=1)


def logmel_delta_features(y: np.ndarray, cfg: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """The 2018 input features of a waveform: ``delta_features(log_mel_spectrogram(y, cfg))``.

    Args:
        y: mono waveform (samples,) at ``cfg.sample_rate`` Hz (44.1 kHz by default).

    Returns:
        float32 (frames, 2 * n_mels) = (1 + len(y) // 1764, 128) with the defaults; one row per
        40 ms video frame (25 fps).

    Raises:
        ValueError: ``y`` shorter than :func:`min_samples` (883 samples with the defaults), not
            1-D, or not finite; the message names the length.
    """
    return delta_features(log_mel_spectrogram(y, cfg))


def add_context(x: np.ndarray, context: int) -> np.ndarray:
    """Stack each frame with its ``context`` previous frames, as the original ``addContext``.

    Row ``t`` becomes ``concat(x[t], x[t-1], ..., x[t-context])``; where ``t - k < 0`` the first
    frame ``x[0]`` is used instead.

    Args:
        x: (frames, dim) array.
        context: number of previous frames, >= 0 (``context=0`` returns ``x`` unchanged).

    Returns:
        (frames, dim * (context + 1)) array of ``x``'s dtype.

    Raises:
        ValueError: ``context < 0`` or ``x`` not 2-D / empty.
    """
    x = np.asarray(x)
    if context < 0 or int(context) != context:
        raise ValueError(f"context must be a non-negative integer, got {context!r}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty (frames, dim) array, got shape {x.shape}")
    if context == 0:
        return x
    t = x.shape[0]
    padded = np.concatenate([np.repeat(x[:1], context, axis=0), x], axis=0)
    return np.concatenate([padded[context - k: context - k + t] for k in range(context + 1)], axis=1)


# --------------------------------------------------------------------------------------------
# Keras layers (TensorFlow backend)
# --------------------------------------------------------------------------------------------
