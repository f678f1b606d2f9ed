"""Noise-resilient (NR) training augmentation of Eskimez et al. 2020: gain and noise at an SNR.

Source: reference.md, "Noise-resilient (NR) training": the clean speech of each sample gets a
random gain in :data:`GAIN_DB`; a random noise file and a random segment of it are mixed in at a
random SNR in :data:`SNR_DB`, the noise scaled by ``sqrt(P_speech / P_noise / 10**(SNR/10))``
where ``P`` is the mean square over the segment.

Two equivalent sets of functions:

* numpy (:func:`apply_gain_db`, :func:`noise_segment`, :func:`mix_at_snr`,
  :func:`measure_snr_db`) for offline work and tests;
* TensorFlow (:func:`tf_apply_gain_db`, :func:`tf_mix_at_snr`, :class:`NoiseBank`) for use
  inside ``tf.data`` map functions: no Python runs per sample.

:class:`NoiseBank` decodes every noise file once (tensorflow-io by default; only here, in the
input pipeline, never inside a model) and keeps them concatenated in one float32 tensor.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

__all__ = [
    "GAIN_DB",
    "SNR_DB",
    "AUDIO_EXTENSIONS",
    "apply_gain_db",
    "noise_segment",
    "mix_at_snr",
    "measure_snr_db",
    "tf_apply_gain_db",
    "tf_mix_at_snr",
    "NoiseBank",
]

GAIN_DB: tuple[int, ...] = (-12, -9, -6, -3, 0, 3, 6)
"""Speech gain augmentation of the 2020 NR training (dB)."""

SNR_DB: tuple[int, ...] = tuple(range(6, 31, 3))
"""Mixing SNRs of the 2020 NR training: 6, 9, ..., 30 dB."""

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
"""Files :meth:`NoiseBank.from_dir` picks up (case-insensitive)."""


# ------------------------------------------------------------------------------------- numpy


def apply_gain_db(y: np.ndarray, db: float) -> np.ndarray:
    """``y * 10**(db / 20)`` as float32 (amplitude gain in dB; no clipping)."""
    return (np.asarray(y, dtype=np.float32) * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def noise_segment(noise: np.ndarray, n: int,
                  rng_or_offset: int | np.random.Generator | None = None) -> np.ndarray:
    """A segment of ``n`` samples of ``noise``.

    Args:
        noise: 1-D noise waveform (non-empty).
        n: segment length in samples (>= 0).
        rng_or_offset: an ``int`` start offset (taken modulo ``len(noise)``), or a
            ``np.random.Generator`` / ``None`` (fresh generator) to draw the start uniformly:
            in ``[0, len(noise) - n]`` when the noise is long enough (no wrap-around), else in
            ``[0, len(noise))``.

    Returns:
        float32 (n,). When ``noise`` is shorter than the segment (or the offset runs past its
        end) it is tiled: sample ``i`` is ``noise[(offset + i) % len(noise)]``.

    Raises:
        ValueError: empty noise or negative ``n``.
    """
    noise = np.asarray(noise, dtype=np.float32)
    if noise.ndim != 1 or noise.size == 0:
        raise ValueError(f"noise must be a non-empty 1-D array, got shape {noise.shape}")
    if n < 0:
        raise ValueError(f"segment length must be >= 0, got {n}")
    length = noise.shape[0]
    if isinstance(rng_or_offset, (int, np.integer)):
        offset = int(rng_or_offset) % length
    else:
        rng = rng_or_offset if rng_or_offset is not None else np.random.default_rng()
        high = length - n + 1 if length >= n else length
        offset = int(rng.integers(0, high))
    return np.take(noise, offset + np.arange(n), mode="wrap").astype(np.float32, copy=False)


def _power(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def mix_at_snr(speech: np.ndarray, noise_segment: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + k * noise`` with ``k = sqrt(P_speech / P_noise / 10**(snr_db / 10))``.

    ``P`` is the mean square over the whole arrays (the 2020 definition: no voice-activity
    weighting). Any SNR is accepted, negative included. No clipping; float32 out.

    Raises:
        ValueError: shapes differ, or the noise is all zeros (no SNR can be reached).
    """
    s = np.asarray(speech, dtype=np.float32)
    v = np.asarray(noise_segment, dtype=np.float32)
    if s.shape != v.shape:
        raise ValueError(f"speech and noise segment shapes differ: {s.shape} vs {v.shape}")
    p_n = _power(v)
    if p_n == 0.0:
        raise ValueError("noise segment is all zeros; cannot mix at an SNR")
    k = np.sqrt(_power(s) / p_n / 10.0 ** (snr_db / 10.0))
    return (s.astype(np.float64) + k * v.astype(np.float64)).astype(np.float32)


def measure_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR in dB of ``noisy`` w.r.t. ``clean``: ``10 log10(P(clean) / P(noisy - clean))``.

    Returns ``inf`` when ``noisy == clean`` and ``-inf`` for silent ``clean``.
    """
    c = np.asarray(clean, dtype=np.float64)
    d = np.asarray(noisy, dtype=np.float64) - c
    p_c, p_d = _power(c), _power(d)
    if p_d == 0.0:
        return float("inf")
    if p_c == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(p_c / p_d))


# ---------------------------------------------------------------------------------- TensorFlow


def tf_apply_gain_db(y: tf.Tensor, db: Any) -> tf.Tensor:
    """In-graph :func:`apply_gain_db`; ``db`` is a scalar or broadcasts against ``y[..., :1]``."""
    y = tf.convert_to_tensor(y, tf.float32)
    db = tf.cast(db, tf.float32)
    return y * tf.pow(10.0, db / 20.0)


def tf_mix_at_snr(speech: tf.Tensor, noise_segment: tf.Tensor, snr_db: Any) -> tf.Tensor:
    """In-graph :func:`mix_at_snr` over the last axis.

    Args:
        speech: float (..., n).
        noise_segment: float (..., n), same shape.
        snr_db: scalar, or shape (...) (one SNR per leading index).

    Returns:
        float32 (..., n). Where the noise is all zeros the speech is returned unchanged (the
        numpy version raises instead; a graph must not produce NaN).
    """
    s = tf.convert_to_tensor(speech, tf.float32)
    v = tf.convert_to_tensor(noise_segment, tf.float32)
    snr = tf.cast(snr_db, tf.float32)
    snr = tf.expand_dims(snr, -1) if snr.shape.rank else snr
    p_s = tf.reduce_mean(tf.square(s), axis=-1, keepdims=True)
    p_n = tf.reduce_mean(tf.square(v), axis=-1, keepdims=True)
    k = tf.sqrt(tf.math.divide_no_nan(p_s, p_n * tf.pow(10.0, snr / 10.0)))
    return s + k * v


def _clean_tf_message(e: BaseException) -> str:
    """The human part of a TF op error (drops ``{{function_node ...}}`` and ``[Op:...]``)."""
    msg = getattr(e, "message", None) or str(e)
    msg = re.sub(r"\{\{[^}]*\}\}", "", msg)
    msg = re.sub(r"\[Op:[^\]]*\]", "", msg)
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _decode_tfio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode one file with tensorflow-io to mono float32 at ``sample_rate``."""
    import tensorflow_io as tfio

    audio = tfio.audio.AudioIOTensor(str(path))
    rate = int(audio.rate.numpy())
    x = audio.to_tensor()
    if x.dtype == tf.int16:
        x = tf.cast(x, tf.float32) / 32768.0
    elif x.dtype == tf.int32:
        x = tf.cast(x, tf.float32) / 2147483648.0
    elif x.dtype == tf.uint8:
        x = (tf.cast(x, tf.float32) - 128.0) / 128.0
    else:
        x = tf.cast(x, tf.float32)
    x = tf.reduce_mean(x, axis=-1, keepdims=True)  # (samples, 1)
    if rate != sample_rate:
        # tfio's resample retraces an internal tf.function per call and warns about it
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")
        try:
            x = tfio.audio.resample(x, rate_in=rate, rate_out=sample_rate)
        finally:
            logger.setLevel(level)
    return x[:, 0].numpy()


class NoiseBank:
    """Noise recordings held in memory for in-graph random segment sampling.

    All files are concatenated into one float32 tensor ``flat`` with per-file ``starts`` and
    ``lengths`` (int64), so :meth:`sample` is a handful of TF ops usable in ``tf.data`` map
    functions and graph code.

    Build with :meth:`from_dir` (decode a folder) or directly from arrays already at
    ``sample_rate``.

    Args:
        arrays: 1-D waveforms at ``sample_rate`` Hz (each non-empty).
        sample_rate: Hz.
        names: one name per array (file names for :meth:`from_dir`).

    Raises:
        ValueError: no arrays, or an empty / non-1-D / non-finite one (named).
    """

    def __init__(self, arrays: Sequence[np.ndarray], sample_rate: int,
                 names: Sequence[str] | None = None) -> None:
        arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
        names = list(names) if names is not None else [f"noise[{i}]" for i in range(len(arrays))]
        if not arrays:
            raise ValueError("NoiseBank needs at least one noise waveform")
        if len(names) != len(arrays):
            raise ValueError(f"{len(names)} names for {len(arrays)} arrays")
        for name, a in zip(names, arrays):
            if a.ndim != 1 or a.size == 0:
                raise ValueError(f"{name}: noise must be a non-empty 1-D waveform, got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: noise contains NaN or Inf values")
        self.sample_rate = int(sample_rate)
        self.names = tuple(names)
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.flat = tf.constant(np.concatenate(arrays))
        self.starts = tf.constant(starts)
        self.lengths = tf.constant(lengths)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike, sample_rate: int, decoder: str = "tfio") -> "NoiseBank":
        """Decode every audio file (:data:`AUDIO_EXTENSIONS`) of a folder once, sorted by name.

        Args:
            directory: folder of noise recordings (not searched recursively).
            sample_rate: target rate in Hz (8000 for the 2020 recipe).
            decoder: ``"tfio"`` — ``tfio.audio.AudioIOTensor`` + ``tfio.audio.resample``
                (wav/flac/ogg/mp3; channels averaged); note tfio's resampler does not
                compensate its filter delay (about 4 ms at 22.05 -> 8 kHz) and its low-pass starts
                a little below soxr's (white noise: 0.2 dB less energy), harmless for noise;
                ``"ffmpeg"`` — :func:`tf_talkface.audio.io.load_audio` (ffmpeg + soxr_hq, as
                the speech).

        Raises:
            FileNotFoundError: the folder does not exist.
            ValueError: the folder holds no audio file (message names the folder), or
                ``decoder`` is unknown.
            tf_talkface.audio.io.AudioError: a file fails to decode (message names the file).
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"noise folder not found: {directory}")
        if decoder not in ("tfio", "ffmpeg"):
            raise ValueError(f"unknown decoder {decoder!r}; use 'tfio' or 'ffmpeg'")
        from tf_talkface.audio.io import AudioError, load_audio

        files = sorted(p for p in directory.iterdir()
                       if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise ValueError(f"noise folder {directory} holds no audio files "
                             f"({', '.join(AUDIO_EXTENSIONS)})")
        arrays = []
        for p in files:
            if decoder == "ffmpeg":
                y = load_audio(p, sample_rate)
            else:
                if p.stat().st_size == 0:
                    raise AudioError(f"{p}: file is empty (0 bytes)")
                try:
                    y = _decode_tfio(p, sample_rate)
                except (tf.errors.OpError, ValueError, RuntimeError) as e:
                    raise AudioError(f"{p}: tensorflow-io cannot decode it ({_clean_tf_message(e)})") from e
            if y.size == 0:
                raise AudioError(f"{p}: decoded to zero samples")
            arrays.append(y)
        return cls(arrays, sample_rate, names=[p.name for p in files])

    @property
    def num_files(self) -> int:
        return len(self.names)

    def waveform(self, i: int) -> np.ndarray:
        """The ``i``-th noise recording as float32 numpy (samples,)."""
        s, n = int(self.starts[i]), int(self.lengths[i])
        return self.flat[s:s + n].numpy()

    def _uniform_int(self, maxval: tf.Tensor, seed: Any, salt: int) -> tf.Tensor:
        """Scalar int64 uniform in [0, maxval) (maxval >= 1), stateful or stateless."""
        if seed is None or isinstance(seed, (int, np.integer)):
            u = tf.random.uniform([], seed=None if seed is None else int(seed) + salt, dtype=tf.float64)
        else:
            s = tf.cast(tf.convert_to_tensor(seed), tf.int64)
            u = tf.random.stateless_uniform([], seed=s + tf.constant([0, salt], tf.int64), dtype=tf.float64)
        m = tf.cast(maxval, tf.float64)
        return tf.minimum(tf.cast(tf.floor(u * m), tf.int64), tf.cast(maxval, tf.int64) - 1)

    def sample(self, n: Any, seed: Any = None) -> tf.Tensor:
        """A random segment of ``n`` samples from a uniformly chosen noise file (in-graph).

        The start is uniform in ``[0, length - n]`` for a file at least ``n`` long; a shorter
        file is tiled from a uniform start in ``[0, length)``.

        Args:
            n: segment length in samples (int or scalar int tensor, may be symbolic).
            seed: ``None`` (stateful global RNG), a Python ``int`` (op-level seed of stateful
                ops) or a shape-(2,) integer tensor for stateless sampling (same seed, same
                segment — use with ``tf.data.Dataset.random`` / ``tf.random.split``).

        Returns:
            float32 tensor (n,).
        """
        n = tf.cast(n, tf.int64)
        i = self._uniform_int(tf.constant(self.num_files, tf.int64), seed, 0)
        start = tf.gather(self.starts, i)
        length = tf.gather(self.lengths, i)
        maxval = tf.where(length >= n, length - n + 1, length)
        offset = self._uniform_int(maxval, seed, 1)
        idx = start + tf.math.floormod(offset + tf.range(n, dtype=tf.int64), length)
        return tf.gather(self.flat, idx)

    def nr_pair(self, speech: tf.Tensor, seed: Any = None,
                gains_db: Sequence[float] = GAIN_DB,
                snrs_db: Sequence[float] = SNR_DB) -> tuple[tf.Tensor, tf.Tensor]:
        """One NR-training pair from a clean waveform (in-graph).

        ``clean = speech * 10**(g/20)`` with ``g`` uniform in ``gains_db``; ``noisy = clean +
        scaled noise`` with a random file/segment from :meth:`sample` at an SNR uniform in
        ``snrs_db``.

        Args:
            speech: float32 (n,) clean waveform at :attr:`sample_rate`.
            seed: as :meth:`sample`.

        Returns:
            ``(clean, noisy)``, both float32 (n,).
        """
        speech = tf.convert_to_tensor(speech, tf.float32)
        gains = tf.constant(list(gains_db), tf.float32)
        snrs = tf.constant(list(snrs_db), tf.float32)
        g = tf.gather(gains, self._uniform_int(tf.size(gains, out_type=tf.int64), seed, 2))
        snr = tf.gather(snrs, self._uniform_int(tf.size(snrs, out_type=tf.int64), seed, 3))
        clean = tf_apply_gain_db(speech, g)
        noise_seg = self.sample(tf.shape(speech, out_type=tf.int64)[0], seed)
        return clean, tf_mix_at_snr(clean, noise_seg, snr)

    def __repr__(self) -> str:
        total = int(tf.reduce_sum(self.lengths))
        return (f"NoiseBank({self.num_files} files, {total / self.sample_rate:.1f} s at "
                f"{self.sample_rate} Hz)")
