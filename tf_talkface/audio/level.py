"""Input level normalisation: gated active-speech RMS with a soft limiter, offline and causal.

Why (issue 11): the 2020 recipe divides every clip by its own peak ``max |x|``. Active speech
then sits wherever the clip's crest factor puts it: about -12 dBFS for GRID, -17 to -20 dBFS for
most real recordings, so a model that ties mouth opening to energy opens the mouth 2-4x less on
them. One loud click moves it again. Here the level is measured on the speech itself.

Level measure (``"loudness"``): the gating of ITU-R BS.1770-4 applied to the plain (unweighted)
mean square: 400-ms blocks with a 100-ms hop; blocks below ``abs_gate_dbfs`` (-70 dBFS) are
dropped; of the rest, blocks more than ``rel_gate_db`` (10 dB) below their mean are dropped; the
level is the RMS of what remains. We differ from BS.1770 on purpose by leaving out its K-weighting
filter: an IIR pre-filter has no exact twin in TensorFlow's core ops (the SavedModel must hold the
same computation), and for speech it moves the level by a near-constant offset. A clip shorter
than one block is one block. The clip is scaled so that this level becomes ``target_dbfs``
(default -15 dBFS, about where GRID's active speech sits after the paper's peak scaling, so
models trained before keep their input range), the gain clipped to ``max_gain_db`` (silence is not blown up),
then :func:`soft_limit` keeps samples inside (-1, 1).

Causal version (streaming): :class:`CausalLevel` estimates the same gated level from the past
only (an exponentially forgetting mean over 40-ms frames, gated the same way) and scales each
frame by ``target / estimate``. :func:`causal_normalise` is that rule on a whole array; a stream
pushed in any chunking gives identical numbers (tested).

Functions come in numpy / TensorFlow pairs that agree to float32 round-off.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # TensorFlow loads only when a TF function runs (prepare needs numpy only)
    import tensorflow as tf

LEVEL_MODES = ("peak", "loudness")
"""``peak``: the 2020 paper's ``x / max|x|`` (the ``paper`` preset); ``loudness``: gated RMS."""

_EPS = 1e-12


@dataclass(frozen=True)
class LevelConfig:
    """How a waveform's level is normalised before the network (stored with runs and exports).

    Attributes:
        mode: ``"peak"`` (paper) or ``"loudness"`` (gated RMS + limiter).
        target_dbfs: active-speech RMS after normalisation, dB re full scale (loudness only).
        block_s, hop_s: gating block and hop in seconds (BS.1770: 0.4, 0.1).
        abs_gate_dbfs: absolute gate (BS.1770: -70).
        rel_gate_db: relative gate below the absolutely gated mean (BS.1770: 10).
        max_gain_db: largest gain applied (quiet or silent input is not amplified further).
        limit_threshold: the soft limiter is linear below this |x| and approaches 1.0 above it.
        causal_tau_s: time constant of the causal level estimate (streaming).
    """

    mode: str = "peak"
    target_dbfs: float = -15.0
    block_s: float = 0.4
    hop_s: float = 0.1
    abs_gate_dbfs: float = -70.0
    rel_gate_db: float = 10.0
    max_gain_db: float = 40.0
    limit_threshold: float = 0.5
    causal_tau_s: float = 4.0

    def __post_init__(self):
        if self.mode not in LEVEL_MODES:
            raise ValueError(f"level mode {self.mode!r}: choose one of {', '.join(LEVEL_MODES)}")
        if not 0 < self.limit_threshold < 1:
            raise ValueError(f"limit_threshold must be in (0, 1), got {self.limit_threshold}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "LevelConfig":
        """``None`` or ``{}`` (artefacts made before level modes existed) is the paper's peak."""
        return cls(**(d or {}))

    @property
    def target_rms(self) -> float:
        return float(10.0 ** (self.target_dbfs / 20.0))


# ------------------------------------------------------------------------------------ numpy

def soft_limit(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Soft limiter: identity for ``|x| <= threshold``, ``threshold + (1 - threshold) *
    tanh((|x| - threshold) / (1 - threshold))`` above (sign kept), so ``|y| <= 1``, continuous
    with slope 1 at the knee. float32 in, float32 out."""
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    k = np.float32(1.0 - threshold)
    over = threshold + k * np.tanh((a - threshold) / k)
    return np.where(a > threshold, np.sign(x) * over, x).astype(np.float32)


def _blocks(n: int, sample_rate: int, cfg: LevelConfig) -> tuple[int, int, int]:
    b = int(round(cfg.block_s * sample_rate))
    h = int(round(cfg.hop_s * sample_rate))
    nb = 1 if n < b else (n - b) // h + 1
    return b, h, nb


def gated_rms(x: np.ndarray, sample_rate: int, cfg: LevelConfig = LevelConfig()) -> float:
    """Gated active-speech RMS of a mono waveform (module docstring), linear units.

    Args:
        x: float (samples,) in [-1, 1].
        sample_rate: Hz.

    Returns:
        RMS of the gated blocks; 0.0 for empty or all-gated (silent) input.
    """
    x = np.asarray(x, np.float64)
    n = x.shape[-1]
    if n == 0:
        return 0.0
    b, h, nb = _blocks(n, sample_rate, cfg)
    if n < b:
        ms = np.array([np.mean(x ** 2)])
    else:
        c = np.concatenate([[0.0], np.cumsum(x ** 2)])
        starts = np.arange(nb) * h
        ms = (c[starts + b] - c[starts]) / b
    lev = 10 * np.log10(ms + _EPS)
    keep = lev > cfg.abs_gate_dbfs
    if not keep.any():
        return 0.0
    rel = 10 * np.log10(ms[keep].mean() + _EPS) - cfg.rel_gate_db
    keep &= lev > rel
    return float(np.sqrt(ms[keep].mean()))


def level_gain(level_rms: float, cfg: LevelConfig) -> float:
    """Gain that brings ``level_rms`` to ``cfg.target_dbfs``, at most ``max_gain_db``."""
    g_max = 10.0 ** (cfg.max_gain_db / 20.0)
    return float(min(g_max, cfg.target_rms / max(level_rms, _EPS)))


def normalise_level(x: np.ndarray, sample_rate: int, cfg: LevelConfig = LevelConfig("loudness")
                    ) -> np.ndarray:
    """Scale a clip to the target active-speech level and soft-limit it (offline, whole clip).

    Args:
        x: float (samples,) or (batch, samples), each row normalised separately.
        sample_rate: Hz.
        cfg: a ``loudness`` config (``peak`` divides by max |x| instead, the paper's way).

    Returns:
        float32, same shape. Silent rows stay zero (never NaN).
    """
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        return np.stack([normalise_level(r, sample_rate, cfg) for r in x]) if len(x) else x
    if cfg.mode == "peak":
        p = float(np.max(np.abs(x))) if x.size else 0.0
        return (x / p).astype(np.float32) if p > 0 else x.copy()
    return soft_limit(x * np.float32(level_gain(gated_rms(x, sample_rate, cfg), cfg)),
                      cfg.limit_threshold)


# ------------------------------------------------------------------------------- TensorFlow

def soft_limit_tf(x: tf.Tensor, threshold: float = 0.5) -> tf.Tensor:
    """In-graph :func:`soft_limit`."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    a = tf.abs(x)
    k = 1.0 - threshold
    over = threshold + k * tf.tanh((a - threshold) / k)
    return tf.where(a > threshold, tf.sign(x) * over, x)


def gated_rms_tf(x: tf.Tensor, sample_rate: int, cfg: LevelConfig = LevelConfig(),
                 lengths: tf.Tensor | None = None) -> tf.Tensor:
    """In-graph :func:`gated_rms` over the last axis.

    Args:
        x: float32 (samples,) or (batch, samples); rows may be zero-padded on the right.
        lengths: int (batch,) true lengths of the rows (default: all samples). Blocks that reach
            into the padding are not used, so a padded row measures as the unpadded one.

    Returns:
        float32 () or (batch,): the level of each row (0 for silent rows).
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    squeeze = x.shape.rank == 1
    if squeeze:
        x = x[None]
    n = tf.shape(x)[-1]
    if lengths is None:
        lengths = tf.fill(tf.shape(x)[:1], n)
    lengths = tf.cast(lengths, tf.int32)
    b = int(round(cfg.block_s * sample_rate))
    h = int(round(cfg.hop_s * sample_rate))
    x2 = tf.cast(tf.square(x), tf.float64)
    c = tf.pad(tf.cumsum(x2, axis=-1), [[0, 0], [1, 0]])
    nmax = tf.maximum((n - b) // h + 1, 1)
    starts = tf.range(nmax) * h                                          # (nb,)
    ends = tf.minimum(starts + b, n)
    sums = tf.gather(c, ends, axis=1) - tf.gather(c, starts, axis=1)     # (B, nb)
    ms = sums / b
    valid = (starts[None] + b) <= lengths[:, None]                       # (B, nb)
    # a row shorter than one block: one block over its own length
    short = lengths < b
    short_ms = tf.gather(c, lengths, axis=1, batch_dims=1) / tf.cast(tf.maximum(lengths, 1), tf.float64)
    first = tf.equal(tf.range(nmax), 0)[None]
    ms = tf.where(short[:, None] & first, short_ms[:, None], ms)
    valid = tf.where(short[:, None], first & (lengths[:, None] > 0), valid)
    lev = 10.0 * tf.math.log(ms + _EPS) / np.log(10.0)
    keep = valid & (lev > cfg.abs_gate_dbfs)
    kf = tf.cast(keep, tf.float64)
    mean1 = tf.math.divide_no_nan(tf.reduce_sum(ms * kf, -1), tf.reduce_sum(kf, -1))
    rel = 10.0 * tf.math.log(mean1 + _EPS) / np.log(10.0) - cfg.rel_gate_db
    keep2 = keep & (lev > rel[:, None])
    k2 = tf.cast(keep2, tf.float64)
    out = tf.sqrt(tf.math.divide_no_nan(tf.reduce_sum(ms * k2, -1), tf.reduce_sum(k2, -1)))
    out = tf.cast(out, tf.float32)
    return out[0] if squeeze else out


def normalise_level_tf(x: tf.Tensor, sample_rate: int, cfg: LevelConfig = LevelConfig("loudness"),
                       lengths: tf.Tensor | None = None, extra_gain_db: Any = None) -> tf.Tensor:
    """In-graph :func:`normalise_level` (rows of a batch separately; padding stays zero).

    ``extra_gain_db`` (training augmentation; scalar or (batch,)): an offset to the target
    level applied before the limiter, so augmented inputs stay inside (-1, 1) like real ones.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    if cfg.mode == "peak":
        return tf.math.divide_no_nan(x, tf.reduce_max(tf.abs(x), axis=-1, keepdims=True))
    level = gated_rms_tf(x, sample_rate, cfg, lengths)
    gain = tf.minimum(10.0 ** (cfg.max_gain_db / 20.0), cfg.target_rms / tf.maximum(level, _EPS))
    if extra_gain_db is not None:
        gain = gain * tf.pow(10.0, tf.cast(extra_gain_db, tf.float32) / 20.0)
    return soft_limit_tf(x * gain[..., None], cfg.limit_threshold)


def compress_tf(x: tf.Tensor, sample_rate: int, threshold_db: Any, ratio: Any,
                window_s: float = 0.01) -> tf.Tensor:
    """A feed-forward dynamic range compressor for augmentation (broadcast-style speech).

    Envelope = RMS over a ``window_s`` moving window; above ``threshold_db`` (dBFS) the gain
    reduces the envelope's excess by ``ratio`` (gain = (thr / env) ** (1 - 1 / ratio)).

    Args:
        x: float32 (samples,).
        threshold_db, ratio: scalars (tensors allowed).

    Returns:
        float32 (samples,).
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    w = max(1, int(round(window_s * sample_rate)))
    env = tf.sqrt(tf.nn.avg_pool1d(tf.square(x)[None, :, None], w, 1, "SAME")[0, :, 0] + 1e-12)
    thr = tf.pow(10.0, tf.cast(threshold_db, tf.float32) / 20.0)
    ratio = tf.cast(ratio, tf.float32)
    g = tf.where(env > thr, tf.pow(thr / env, 1.0 - 1.0 / ratio), 1.0)
    return x * g


# --------------------------------------------------------------------------------- causal

class CausalLevel:
    """Causal (streaming) level normalisation: the gated level estimated from the past only.

    The signal is cut into frames of ``frame`` samples (40 ms at 25 fps). After each frame the
    mean square ``b`` of the last ``block_s`` seconds (10 frames; fewer at the start) is a
    block, gated as offline: if its level is above the absolute gate and above the current
    estimate minus ``rel_gate_db``, it is accepted and the estimate ``E`` moves towards it,
    ``E <- a E + (1 - a) b`` with ``a = min(exp(-frame / (tau * sr)), 1 - 1/j)`` for the
    ``j``-th accepted block (a plain running mean at first, so speech sets the level at once;
    an exponential memory of about ``tau`` seconds later); otherwise ``E`` stays. Each frame is
    scaled by ``target / sqrt(E)`` computed *before* its own update (so frame ``k``'s gain
    depends on frames ``< k`` only, and a chunk boundary inside a frame changes nothing), capped
    at ``max_gain_db``, then soft-limited. Before the first accepted block the gain is 1. The
    gate compares with the estimate, so the level falls only through speech, never through
    pauses; a block more than ``rel_gate_db`` above the estimate restarts the mean (speech
    starting after background noise was measured). The same 400-ms blocks as offline keep the
    two levels close (within a few dB after the first seconds; tested).

    Use :meth:`push` on consecutive chunks of any size; :func:`causal_normalise` runs it on a
    whole array. State: ``estimate`` (mean square), ``accepted`` (blocks so far), the last
    frames' mean squares, the samples of an unfinished frame.
    """

    def __init__(self, sample_rate: int, frame: int, cfg: LevelConfig) -> None:
        if cfg.mode != "loudness":
            raise ValueError("CausalLevel needs a loudness LevelConfig")
        self.sr, self.frame, self.cfg = int(sample_rate), int(frame), cfg
        self.alpha = float(np.exp(-self.frame / (cfg.causal_tau_s * self.sr)))
        self.block_frames = block_frames(sample_rate, frame, cfg)
        self.estimate = 0.0  # mean square of the accepted blocks; 0 = none yet
        self.accepted = 0
        self.history = np.zeros(self.block_frames)  # the last frames' mean squares (newest last)
        self.frames_seen = 0
        self._buf = np.zeros(0, np.float32)  # raw samples of the current, unfinished frame
        self._gain = self._gain_now()

    def _gain_now(self) -> float:
        if self.accepted == 0:
            return 1.0
        return level_gain(float(np.sqrt(self.estimate)), self.cfg)

    def _update(self, frame: np.ndarray) -> None:
        self.history = np.roll(self.history, -1)
        self.history[-1] = float(np.mean(frame.astype(np.float64) ** 2))
        self.frames_seen += 1
        n = min(self.frames_seen, self.block_frames)
        block = float(self.history.sum() / n)
        lev = 10 * np.log10(block + _EPS)
        if lev > self.cfg.abs_gate_dbfs and (
                self.accepted == 0 or lev > 10 * np.log10(self.estimate) - self.cfg.rel_gate_db):
            if self.accepted and lev > 10 * np.log10(self.estimate) + self.cfg.rel_gate_db:
                self.accepted = 0  # speech onset after background noise: start again from here
            self.accepted += 1
            a = min(self.alpha, 1.0 - 1.0 / self.accepted)
            self.estimate = a * self.estimate + (1 - a) * block

    def push(self, x: np.ndarray) -> np.ndarray:
        """Normalise the next chunk (float (n,), any n >= 0) -> float32 (n,)."""
        x = np.asarray(x, np.float32).reshape(-1)
        out = np.empty_like(x)
        i = 0
        while i < len(x):
            take = min(len(x) - i, self.frame - len(self._buf))
            seg = x[i:i + take]
            out[i:i + take] = seg * np.float32(self._gain)
            self._buf = np.concatenate([self._buf, seg])
            i += take
            if len(self._buf) == self.frame:
                self._update(self._buf)
                self._buf = np.zeros(0, np.float32)
                self._gain = self._gain_now()
        return soft_limit(out, self.cfg.limit_threshold)


def block_frames(sample_rate: int, frame: int, cfg: LevelConfig) -> int:
    """Frames of ``frame`` samples in one gating block (``block_s``): 10 for 40-ms frames."""
    return max(1, int(round(cfg.block_s * sample_rate / frame)))


def causal_normalise(x: np.ndarray, sample_rate: int, frame: int,
                     cfg: LevelConfig = LevelConfig("loudness")) -> np.ndarray:
    """:class:`CausalLevel` over a whole waveform (what a stream of it gives). float32 (n,)."""
    return CausalLevel(sample_rate, frame, cfg).push(x)


def causal_level_init_tf(block_frames: int = 10) -> dict:
    """Initial state of :func:`causal_level_step_tf` (as a fresh :class:`CausalLevel`):
    ``level_estimate`` f64 (), ``level_accepted`` i64 (), ``level_history`` f64
    (block_frames,), ``level_frames`` i64 (), ``level_pending`` f32 (0,)."""
    import tensorflow as tf

    return {"level_estimate": tf.constant(0.0, tf.float64),
            "level_accepted": tf.constant(0, tf.int64),
            "level_history": tf.zeros([block_frames], tf.float64),
            "level_frames": tf.constant(0, tf.int64),
            "level_pending": tf.zeros([0], tf.float32)}


def causal_level_step_tf(x: tf.Tensor, state: dict, sample_rate: int, frame: int,
                         cfg: LevelConfig) -> tuple[tf.Tensor, dict]:
    """In-graph :meth:`CausalLevel.push` (SavedModel streaming sessions carry ``state``).

    Args:
        x: float32 (n,) the next raw samples.
        state: from :func:`causal_level_init_tf` (``block_frames`` =
            ``round(block_s * sample_rate / frame)``) or the previous step.

    Returns:
        (float32 (n,) normalised samples, new state). Equals :class:`CausalLevel` to float32
        round-off for any chunking.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    nb = block_frames(sample_rate, frame, cfg)
    pending = state["level_pending"]
    k0 = tf.shape(pending)[0]
    allx = tf.concat([pending, x], 0)
    nfull = tf.shape(allx)[0] // frame
    frames = tf.reshape(allx[:nfull * frame], [nfull, frame])
    ms_all = tf.reduce_mean(tf.square(tf.cast(frames, tf.float64)), axis=1)
    ln10 = np.log(10.0)
    g_max = 10.0 ** (cfg.max_gain_db / 20.0)
    alpha = float(np.exp(-frame / (cfg.causal_tau_s * sample_rate)))

    def gain(est, acc):
        g = tf.minimum(tf.constant(g_max, tf.float64),
                       cfg.target_rms / tf.maximum(tf.sqrt(est), _EPS))
        return tf.where(acc > 0, g, tf.constant(1.0, tf.float64))

    def body(j, est, acc, hist, seen, gains):
        gains = gains.write(j, gain(est, acc))
        hist = tf.concat([hist[1:], ms_all[j][None]], 0)
        seen = seen + 1
        block = tf.reduce_sum(hist) / tf.cast(tf.minimum(seen, nb), tf.float64)
        lev = 10.0 * tf.math.log(block + _EPS) / ln10
        est_db = 10.0 * tf.math.log(tf.maximum(est, 1e-300)) / ln10
        accept = (lev > cfg.abs_gate_dbfs) & ((acc == 0) | (lev > est_db - cfg.rel_gate_db))
        restart = accept & (acc > 0) & (lev > est_db + cfg.rel_gate_db)
        acc1 = tf.where(restart, tf.constant(0, tf.int64), acc) + 1
        a = tf.minimum(tf.constant(alpha, tf.float64), 1.0 - 1.0 / tf.cast(acc1, tf.float64))
        est1 = a * est + (1.0 - a) * block
        return (j + 1, tf.where(accept, est1, est), tf.where(accept, acc1, acc), hist, seen, gains)

    gains0 = tf.TensorArray(tf.float64, size=nfull + 1)
    _, est, acc, hist, seen, gains = tf.while_loop(
        lambda j, *_: j < nfull, body,
        (tf.constant(0), state["level_estimate"], state["level_accepted"],
         state["level_history"], state["level_frames"], gains0))
    gains = gains.write(nfull, gain(est, acc)).stack()                       # (nfull + 1,)
    idx = (k0 + tf.range(tf.shape(x)[0])) // frame
    g = tf.cast(tf.gather(gains, idx), tf.float32)
    y = soft_limit_tf(x * g, cfg.limit_threshold)
    new = {"level_estimate": est, "level_accepted": acc, "level_history": hist,
           "level_frames": seen, "level_pending": allx[nfull * frame:]}
    return y, new
