"""ATVGnet's audio features: MFCC exactly as ``python_speech_features`` computes them, and the
28 x 12 window per video frame (Chen et al. 2019; docs ``atvgnet_davs.md`` A2).

Source: ``[A] code/demo.py`` and ``code/lrw_data.py audio2mfcc``:
``python_speech_features.mfcc(sig, 16000, winstep=0.01)`` with the library's defaults (25 ms =
400-sample frames every 10 ms = 160 samples, no window function, 512-point FFT, 26 mel filters
0-8000 Hz, pre-emphasis 0.97, 13 cepstra, lifter 22, column 0 replaced by the log frame energy),
then column 0 dropped: **12 coefficients per row, 100 rows/s, 4 rows per 25-fps video frame**.
No mean/variance normalisation.

Two twins compute the same numbers:

* :func:`mfcc` -- the numpy reference; it calls the library itself (used by ``prepare``);
* :func:`mfcc_tf` -- TensorFlow core ops only (servable in a SavedModel), tested equal to the
  library to 1e-4 absolute (``tests/test_atvgnet_data.py``; float64 inside, as the library).

**The window rule (one rule for training and inference).** The utterance is padded with
:data:`PAD_SAMPLES` = 1920 zeros (3 video frames, 0.12 s) before *and* after, as the original
demo does, and the MFCC of that padded signal (:func:`mfcc_padded`, what the records store) is
cut into windows: frame ``k`` reads rows ``4k ... 4k + 27`` (:func:`mfcc_windows`), i.e. the
original's rows ``(ind - 3) * 4 ... (ind + 4) * 4`` with ``ind = k + 3``: a 0.28 s window (7 video
frames) centred on frame ``k``. The original demo stops at ``ind <= rows // 4 - 4`` and so drops
the last frame of a clip (a clip of ``n * 640`` samples has ``4n + 23`` padded rows, the last
window needs ``4n + 24``); we keep every frame by repeating the last row where rows run out.
That row is the MFCC of an all-zero frame (the last 11 rows all are), so the repeat equals
what more zero padding would give. Training uses the same windows (the original trained on
unpadded MFCC and skipped frames whose window did not fit; with the padding every frame has one).

Units: waveform float mono in [-1, 1] at 16 kHz; MFCC float32 (rows, 12), dimensionless
(natural-log mel energies, DCT-II ortho, liftered).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only
    import tensorflow as tf

__all__ = ["SAMPLE_RATE", "WIN", "STEP", "NFFT", "N_FILTERS", "N_CEPS", "N_MFCC", "LIFTER",
           "PREEMPH", "PAD_SAMPLES", "ROWS_PER_FRAME", "WINDOW_ROWS", "CONTEXT_FRAMES",
           "num_rows", "mfcc", "mfcc_padded", "mfcc_windows", "mel_filterbank", "dct_matrix",
           "lifter_weights", "mfcc_tf", "mfcc_padded_tf", "mfcc_windows_tf"]

SAMPLE_RATE = 16000
"""Hz: the original resamples every input to 16 kHz (``librosa.load(sr=16000)``)."""
WIN = 400
"""Samples per MFCC frame (the library's winlen 0.025 s)."""
STEP = 160
"""Samples between MFCC frames (winstep 0.01 s): 100 rows/s."""
NFFT = 512
N_FILTERS = 26
N_CEPS = 13
"""Cepstra the library returns; column 0 (log energy) is dropped."""
N_MFCC = N_CEPS - 1
"""12 coefficients per row."""
LIFTER = 22
PREEMPH = 0.97
PAD_SAMPLES = 1920
"""Zeros added before and after the utterance (3 video frames at 16 kHz / 25 fps)."""
ROWS_PER_FRAME = 4
"""MFCC rows per 25-fps video frame (40 ms / 10 ms)."""
WINDOW_ROWS = 28
"""Rows per window: 7 video frames (0.28 s)."""
CONTEXT_FRAMES = 3
"""Video frames of context on each side of the window's centre frame."""

_EPS = float(np.finfo(float).eps)  # the library's floor for zero energies (float64 eps)


def num_rows(n_samples: int) -> int:
    """MFCC rows of a signal of ``n_samples`` samples: the library's ``framesig`` rule, 1 for up
    to 400 samples, else ``1 + ceil((n - 400) / 160)`` (the last frame is zero-padded).

    ``num_rows(75 * 640 + 2 * 1920) == 323`` (a 3-s GRID clip, padded).
    """
    n = int(n_samples)
    return 1 if n <= WIN else 1 + -(-(n - WIN) // STEP)


def _check_signal(sig) -> np.ndarray:
    x = np.asarray(sig)
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty mono waveform (samples,), got shape {x.shape}")
    return x.astype(np.float64)


def mfcc(sig: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The ATVGnet MFCC of a waveform: ``python_speech_features.mfcc(sig, 16000, winstep=0.01)``
    with library defaults, column 0 (log energy) dropped.

    Args:
        sig: float (samples,) mono in [-1, 1] at ``sample_rate``.
        sample_rate: must be 16000 (the filterbank and frame sizes are the original's at 16 kHz).

    Returns:
        float32 (:func:`num_rows` (samples), 12); row ``r`` covers samples ``[160 r, 160 r + 400)``.

    Raises:
        ValueError: another sample rate, or not a non-empty 1-D signal.
    """
    import python_speech_features

    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"ATVGnet MFCC need {SAMPLE_RATE} Hz audio, got {sample_rate}")
    x = _check_signal(sig)
    m = python_speech_features.mfcc(x, SAMPLE_RATE, winstep=STEP / SAMPLE_RATE)
    return m[:, 1:].astype(np.float32)


def mfcc_padded(sig: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """:func:`mfcc` of ``sig`` with :data:`PAD_SAMPLES` zeros before and after (the original
    demo's padding; what the ``atvgnet`` records store as ``mfcc``).

    Returns:
        float32 (:func:`num_rows` (samples + 3840), 12): ``4n + 23`` rows for ``n * 640`` samples.
    """
    x = _check_signal(sig)
    return mfcc(np.concatenate([np.zeros(PAD_SAMPLES), x, np.zeros(PAD_SAMPLES)]), sample_rate)


def _window_index(n_frames: int) -> np.ndarray:
    return ROWS_PER_FRAME * np.arange(n_frames)[:, None] + np.arange(WINDOW_ROWS)[None, :]


def mfcc_windows(mfcc_rows: np.ndarray, n_frames: int, pad: bool = True) -> np.ndarray:
    """The 28 x 12 MFCC window of every video frame (the module docstring's rule).

    Args:
        mfcc_rows: float (rows, 12). With ``pad=True`` (the rule used everywhere in this
            library) the MFCC of the padded utterance (:func:`mfcc_padded`): frame ``k`` reads
            rows ``4k ... 4k + 27``. With ``pad=False`` the MFCC of the unpadded signal
            (:func:`mfcc`, the original's training files): frame ``k`` reads rows
            ``4(k - 3) ... 4(k + 4) - 1``, rows before the first repeating row 0.
        n_frames: video frames (25 fps) to cut windows for.
        pad: see ``mfcc_rows``.

    Returns:
        float32 (n_frames, 28, 12). Rows past the end repeat the last row.

    Raises:
        ValueError: empty ``mfcc_rows`` or ``n_frames < 0``.
    """
    m = np.asarray(mfcc_rows, np.float32)
    if m.ndim != 2 or m.shape[0] == 0:
        raise ValueError(f"mfcc_rows must be a non-empty (rows, coefficients) array, got {m.shape}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if not pad:
        m = np.concatenate([np.repeat(m[:1], CONTEXT_FRAMES * ROWS_PER_FRAME, axis=0), m])
    idx = np.minimum(_window_index(n_frames), m.shape[0] - 1)
    return m[idx]


# --------------------------------------------------------------------------- constants of the TF twin

def mel_filterbank() -> np.ndarray:
    """float64 (26, 257): the library's ``get_filterbanks(26, 512, 16000, 0, 8000)`` (triangles
    on FFT bins floored from mel-spaced points, exactly as the library builds them)."""
    from python_speech_features.base import get_filterbanks

    return np.asarray(get_filterbanks(N_FILTERS, NFFT, SAMPLE_RATE, 0, SAMPLE_RATE / 2), np.float64)


def dct_matrix() -> np.ndarray:
    """float64 (26, 13): DCT-II with ``norm="ortho"`` (scipy's), first 13 outputs:
    ``c = log_energies @ dct_matrix()``."""
    n = np.arange(N_FILTERS)[:, None]
    k = np.arange(N_CEPS)[None, :]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * N_FILTERS)) * np.sqrt(2.0 / N_FILTERS)
    d[:, 0] = 1.0 / np.sqrt(N_FILTERS)
    return d


def lifter_weights() -> np.ndarray:
    """float64 (13,): the library's lifter ``1 + (L / 2) sin(pi n / L)``, L = 22."""
    n = np.arange(N_CEPS)
    return 1.0 + (LIFTER / 2.0) * np.sin(np.pi * n / LIFTER)


# --------------------------------------------------------------------------- TensorFlow twin

def mfcc_tf(waveform: "tf.Tensor", dtype: "tf.DType | None" = None,
            keep_energy: bool = False) -> "tf.Tensor":
    """:func:`mfcc` in TensorFlow core ops (servable; no python_speech_features at run time).

    The same steps as the library: pre-emphasis 0.97 (``y[0] = x[0]``); ``framesig``'s frame
    count (:func:`num_rows`) with the last frame zero-padded; 400-sample frames every 160, no
    window; power spectrum ``|rfft_512|^2 / 512``; frame energy = its sum; 26 mel filters
    (:func:`mel_filterbank`, a constant); zeros replaced by float64 eps before the natural log;
    DCT-II ortho (:func:`dct_matrix`); lifter 22; column 0 = log frame energy, then dropped.

    Args:
        waveform: float (..., samples) at 16 kHz, at least one sample; leading axes are batch
            axes (every row the same length).
        dtype: computation dtype, ``tf.float64`` by default like the library (float32 differs by
            up to ~1e-3 on quiet high bands: the FFT's rounding is relative to the loudest bin).
        keep_energy: return all 13 columns (column 0 = log frame energy) instead of 12.

    Returns:
        float32 (..., num_rows(samples), 12) (13 with ``keep_energy``).
    """
    import tensorflow as tf

    dtype = dtype or tf.float64
    x = tf.cast(tf.convert_to_tensor(waveform), dtype)
    x = tf.concat([x[..., :1], x[..., 1:] - tf.constant(PREEMPH, dtype) * x[..., :-1]], axis=-1)
    n = tf.shape(x)[-1]
    rows = tf.where(n <= WIN, 1, 1 + (n - WIN + STEP - 1) // STEP)
    pad_len = (rows - 1) * STEP + WIN - n
    rank = tf.rank(x)
    paddings = tf.concat([tf.zeros([rank - 1, 2], tf.int32), [[0, pad_len]]], axis=0)
    x = tf.pad(x, paddings)
    frames = tf.signal.frame(x, WIN, STEP, axis=-1)                      # (..., rows, 400)
    spec = tf.signal.rfft(frames, fft_length=[NFFT])                      # (..., rows, 257)
    pspec = (tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))) / NFFT
    eps = tf.constant(_EPS, dtype)
    energy = tf.reduce_sum(pspec, axis=-1)
    energy = tf.where(tf.equal(energy, 0), eps, energy)
    feat = tf.linalg.matmul(pspec, tf.constant(mel_filterbank().T, dtype))
    feat = tf.where(tf.equal(feat, 0), eps, feat)
    ceps = tf.linalg.matmul(tf.math.log(feat), tf.constant(dct_matrix(), dtype))
    ceps = ceps * tf.constant(lifter_weights(), dtype)
    if keep_energy:
        ceps = tf.concat([tf.math.log(energy)[..., None], ceps[..., 1:]], axis=-1)
    else:
        ceps = ceps[..., 1:]
    return tf.cast(ceps, tf.float32)


def mfcc_padded_tf(waveform: "tf.Tensor", dtype: "tf.DType | None" = None) -> "tf.Tensor":
    """:func:`mfcc_padded` in TF ops: :func:`mfcc_tf` of the waveform with 1920 zeros before and
    after (along the last axis). float32 (..., rows, 12)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(waveform)
    rank = tf.rank(x)
    paddings = tf.concat([tf.zeros([rank - 1, 2], tf.int32), [[PAD_SAMPLES, PAD_SAMPLES]]], axis=0)
    return mfcc_tf(tf.pad(x, paddings), dtype)


def mfcc_windows_tf(mfcc_rows: "tf.Tensor", n_frames: "tf.Tensor | int",
                    pad: bool = True) -> "tf.Tensor":
    """:func:`mfcc_windows` in TF ops (works inside ``tf.data`` maps and SavedModels).

    Args:
        mfcc_rows: float (rows, 12) (:func:`mfcc_padded_tf` for ``pad=True``).
        n_frames: int scalar (may be a tensor).
    Returns:
        float32 (n_frames, 28, 12).
    """
    import tensorflow as tf

    m = tf.convert_to_tensor(mfcc_rows, tf.float32)
    if not pad:
        m = tf.concat([tf.repeat(m[:1], CONTEXT_FRAMES * ROWS_PER_FRAME, axis=0), m], axis=0)
    n = tf.cast(n_frames, tf.int32)
    idx = ROWS_PER_FRAME * tf.range(n)[:, None] + tf.range(WINDOW_ROWS)[None, :]
    idx = tf.minimum(idx, tf.shape(m)[0] - 1)
    return tf.gather(m, idx)
