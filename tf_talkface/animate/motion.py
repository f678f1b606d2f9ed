"""Motion for the talking photo: predicted landmarks -> the photo's points, plus life.

All of it works frame by frame at 25 fps (:data:`tf_talkface.config.FPS`) with explicit state,
so a stream (chunks of frames as the audio arrives) and an offline call give the same numbers:
the offline path *is* the streaming path run over the whole sequence.

* :class:`MotionTransfer` -- landmark transfer: each predicted frame is first stabilised onto
  the model's neutral frame (similarity on the stable points: eye corners and nose 27-35), its
  displacement from that neutral is mapped into the photo by the linear part of a similarity
  fitted neutral -> photo on the same stable points, weighted per point (mouth and lower jaw
  move, eyes/brows/upper face stay: a speech model's eye motion is noise) and amplified on the
  mouth by ``lip_gain``; inner lips are kept from crossing. Model scale, offset and rotation
  cancel, so any model's output works (2018 /600 canvas, 2020 unit-norm Procrustes frame, a
  future model) as long as ``neutral`` is that model's own closed-mouth/silence frame
  (:func:`model_neutral`).
* :class:`Smoother` -- centred binomial smoothing over ``2k + 1`` frames with ``k`` frames of
  look-ahead (edges repeated), push/flush.
* :class:`HeadMotion` -- low-pass (two cascaded one-pole filters, ~0.6 s) Gaussian noise for
  roll, x and y, its amplitude driven by the speech energy (louder speech, more motion), times an
  amplitude knob; deterministic under a seed and causal.
* :class:`Blinker` -- blinks every 2-5 s (uniform), a 7-frame close/open profile, deterministic
  under a seed.
* :class:`EnergyMeter` / :func:`frame_energy` -- speech energy per 40-ms frame in [0, 1] from
  the RMS level (-55 dBFS -> 0, -15 dBFS -> 1).

Sources: MakeItTalk amplifies lip motion 2x (``--amp_lip_x/y``), scales head motion by
``--amp_pos`` and smooths with Savitzky-Golay (15 frames on the face, 5 on the mouth), offline
only; SadTalker blinks with a 5-frame profile (0.5, 0.9, 1, 0.9, 0.5) after gaps of 10-69
frames and has ``--still``; MakeItTalk's ``add_naive_eye`` closes every 90-150 frames at
62.5 fps. Differences on purpose: our smoothing is short and causal with a fixed look-ahead
(so the stream equals offline), the blink gaps are 2-5 s (a 10-frame gap looks nervous),
the closing is slightly slower than the opening, and head motion follows the speech energy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tf_talkface.config import FPS
from tf_talkface.face.align import STABLE_POINTS, similarity_fit  # re-exported (moved to face/)
from tf_talkface.face.topology import LEFT_EYE, N_POINTS, RIGHT_EYE

__all__ = ["STABLE_POINTS", "MOTION_WEIGHTS", "DEFAULT_LIP_GAIN", "similarity_fit",
           "MotionTransfer", "Smoother", "HeadMotion", "Blinker", "EnergyMeter", "frame_energy",
           "model_neutral", "apply_blink", "BLINK_PROFILE"]

DEFAULT_LIP_GAIN = 2.0
"""Mouth/jaw displacement multiplier (MakeItTalk also uses 2x): the bundled CNN moves the mouth
at ~60-70% of the true amplitude and a photo needs a clearly visible opening."""

# Per-point weight of the transferred displacement (before lip_gain): jaw points by height
# (ears still, chin fully), the whole mouth, nothing else.
_JAW_W = np.array([0, 0, 0.15, 0.35, 0.6, 0.8, 0.95, 1, 1, 1, 0.95, 0.8, 0.6, 0.35, 0.15, 0, 0])
MOTION_WEIGHTS = np.zeros(N_POINTS)
MOTION_WEIGHTS[:17] = _JAW_W
MOTION_WEIGHTS[48:68] = 1.0
MOTION_WEIGHTS.flags.writeable = False
"""float (68,) how much of the model's displacement each photo point takes (times lip_gain)."""

_INNER_PAIRS = ((61, 67), (62, 66), (63, 65))


class MotionTransfer:
    """Model landmarks -> the photo's 68 points (see the module docstring).

    Args:
        photo_points: float (68, 2) the photo's rest points in pixels (mouth closed).
        neutral: float (68, 2) the model's own neutral/closed-mouth frame, in the model's
            coordinates (:func:`model_neutral`, or the sequence's closed-mouth frame).
        lip_gain: multiplier of the mouth and jaw displacement (1 = as predicted; the jaw
            moves with the lower lip, so both are scaled).

    Call :meth:`__call__` on ``(k, 68, 2)`` model frames -> float64 ``(k, 68, 2)`` photo pixels.
    Stateless per frame.
    """

    def __init__(self, photo_points: np.ndarray, neutral: np.ndarray,
                 lip_gain: float = DEFAULT_LIP_GAIN):
        self.photo = np.asarray(photo_points, np.float64).reshape(N_POINTS, 2)
        self.neutral = np.asarray(neutral, np.float64)[..., :2].reshape(N_POINTS, 2)
        if not (np.all(np.isfinite(self.neutral)) and np.all(np.isfinite(self.photo))):
            raise ValueError("neutral and photo points must be finite")
        if not lip_gain >= 0:
            raise ValueError(f"lip_gain must be >= 0, got {lip_gain}")
        self.lip_gain = float(lip_gain)
        fit = similarity_fit(self.neutral[STABLE_POINTS], self.photo[STABLE_POINTS])
        self.linear = fit[:, :2]                      # model units -> photo pixels
        self.weights = np.array(MOTION_WEIGHTS, np.float64) * self.lip_gain
        from tf_talkface.animate.photo_warp import face_frame

        self.down = face_frame(self.photo)[2]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        f = np.asarray(frames, np.float64)[..., :2]
        if f.ndim != 3 or f.shape[1:] != (N_POINTS, 2):
            raise ValueError(f"landmarks must be (frames, 68, 2|3), got {np.shape(frames)}")
        out = np.empty(f.shape, np.float64)
        for i, fr in enumerate(f):
            if not np.all(np.isfinite(fr)):   # a frame without landmarks: the photo at rest
                out[i] = self.photo
                continue
            st = similarity_fit(fr[STABLE_POINTS], self.neutral[STABLE_POINTS])
            disp = fr @ st[:, :2].T + st[:, 2] - self.neutral
            out[i] = self.photo + (disp @ self.linear.T) * self.weights[:, None]
        return self._uncross(out)

    def _uncross(self, pts: np.ndarray) -> np.ndarray:
        """Inner lips may meet but not cross: a pair (61/67, 62/66, 63/65) whose lower point is
        above its upper one (along the face's down axis) is moved to the pair's midpoint."""
        for up, lo in _INNER_PAIRS:
            gap = (pts[:, lo] - pts[:, up]) @ self.down
            bad = gap < 0
            if bad.any():
                shift = (gap[bad] / 2)[:, None] * self.down[None]
                pts[bad, up] += shift
                pts[bad, lo] -= shift
        return pts


def model_neutral(model, seconds: float = 2.0) -> np.ndarray:
    """The model's own neutral frame: the median of its output for digital silence (the second
    half of ``seconds`` of zeros, after any start-up transient).

    Silence is what the photo shows at rest, so silent stretches of speech keep the photo's mouth
    closed, whatever the model's coordinates. Computed through the model's streaming session
    (``model.streamer()`` for a :class:`~tf_talkface.saved_model.LoadedModel`, or the given
    :class:`~tf_talkface.streamer.Streamer` itself, reset before and after), so ``generate`` and
    ``stream`` get the very same numbers; an object with only ``predict`` and ``sample_rate``
    works too.

    Returns:
        float32 (68, 2) in the model's coordinates.
    """
    y = np.zeros(int(seconds * model.sample_rate), np.float32)
    if hasattr(model, "streamer"):
        s = model.streamer()
    elif hasattr(model, "push") and hasattr(model, "flush"):
        s = model
    else:
        s = None
    if s is not None:
        s.reset()
        lm = np.concatenate([s.push(y), s.flush()])
        s.reset()
    else:
        lm = np.asarray(model.predict(y))
    lm = np.asarray(lm)[..., :2]
    return np.median(lm[len(lm) // 2:], axis=0).astype(np.float32)


class Smoother:
    """Centred binomial smoothing of a frame sequence with ``k`` frames of look-ahead.

    Output frame t = sum_j w_j x[t + j], j = -k..k, binomial weights (k = 1: 1-2-1 / 4;
    k = 2: 1-4-6-4-1 / 16); the sequence is extended by repeating its first and last frames.
    :meth:`push` returns the frames whose look-ahead has arrived, :meth:`flush` the rest, so a
    stream is delayed by ``k`` frames (40 ms each) and equals the offline result exactly.

    Args:
        k: look-ahead in frames (0 = no smoothing).
    """

    def __init__(self, k: int = 1):
        if k < 0:
            raise ValueError(f"smoothing look-ahead must be >= 0, got {k}")
        self.k = int(k)
        w = np.array([math.comb(2 * self.k, j) for j in range(2 * self.k + 1)], np.float64)
        self.w = w / w.sum()
        self.reset()

    def reset(self) -> None:
        self._buf: list[np.ndarray] = []
        self._started = False

    def _emit(self) -> list[np.ndarray]:
        out = []
        n = 2 * self.k + 1
        while len(self._buf) >= n:
            out.append(np.tensordot(self.w, np.stack(self._buf[:n]), axes=1))
            self._buf.pop(0)
        return out

    def push(self, frames) -> list[np.ndarray]:
        """Add frames (iterable of equally shaped arrays); return the smoothed frames now due."""
        for f in frames:
            f = np.asarray(f, np.float64)
            if not self._started:
                self._buf = [f] * self.k
                self._started = True
            self._buf.append(f)
        return self._emit()

    def flush(self) -> list[np.ndarray]:
        """End of the sequence: the remaining ``k`` frames (last frame repeated); resets."""
        if not self._started or self.k == 0:
            self.reset()
            return []
        last = self._buf[-1]
        self._buf.extend([last] * self.k)
        out = self._emit()
        self.reset()
        return out


class _Noise:
    """Deterministic standard-normal values per frame: frame t's draw depends only on
    (seed, stream, t // 256, t % 256), so any chunking gives the same values."""

    def __init__(self, seed: int, stream: int, dim: int):
        self.seed, self.stream, self.dim = int(seed), int(stream), dim
        self._block, self._vals = -1, None

    def __call__(self, t: int) -> np.ndarray:
        b = t // 256
        if b != self._block:
            self._vals = np.random.default_rng([self.seed, self.stream, b]).standard_normal(
                (256, self.dim))
            self._block = b
        return self._vals[t % 256]


class HeadMotion:
    """Per-frame head pose offsets: roll (degrees), x and y shift (fractions of the eye
    distance), about a pivot below the chin (the neck).

    Each of the 3 channels is Gaussian noise through two cascaded one-pole low-pass filters
    (time constant ``tau`` s), scaled so its stationary standard deviation is 1, then multiplied
    by ``amplitude * (0.35 + 0.65 * e_t) * SCALE`` where ``e_t`` is the speech energy (0-1)
    smoothed by a one-pole filter (attack 0.1 s, release 0.6 s): a silent speaker drifts a
    little, a loud one moves more. :data:`SCALE` = standard deviations at amplitude 1 and full
    energy: 1.6 degrees of roll, 5% / 4% of the eye distance in x / y. The filters start in
    their stationary state (3 s of noise run before frame 0), so the first second is not
    unnaturally still. Causal and deterministic under ``seed``: frame t depends on frames
    <= t only.

    Args:
        amplitude: knob, 0 = still head (``--still``), 1 = default.
        seed: random seed.
        tau: low-pass time constant in seconds.
    """

    SCALE = np.array([1.6, 0.05, 0.04])
    """Std of (roll deg, x / eye distance, y / eye distance) at amplitude 1 and full energy."""

    def __init__(self, amplitude: float = 1.0, seed: int = 0, tau: float = 0.6):
        if not amplitude >= 0:
            raise ValueError(f"head motion amplitude must be >= 0, got {amplitude}")
        self.amplitude = float(amplitude)
        self.seed = int(seed)
        self.a = math.exp(-1.0 / (tau * FPS))
        # two cascaded one-pole filters y = a y + (1 - a) x: impulse response
        # (1-a)^2 (n+1) a^n, so the output variance for unit white noise is
        # (1-a)^4 (1+a^2) / (1-a^2)^3; normalise to 1
        a = self.a
        self.norm = 1.0 / math.sqrt((1 - a) ** 4 * (1 + a * a) / (1 - a * a) ** 3)
        self.att = math.exp(-1.0 / (0.1 * FPS))
        self.rel = math.exp(-1.0 / (0.6 * FPS))
        self.reset()

    def reset(self) -> None:
        """Back to frame 0 (filters warmed up as at construction)."""
        self.t = 0
        self._s1 = np.zeros(3)
        self._s2 = np.zeros(3)
        pre = _Noise(self.seed, 2, 3)
        for t in range(3 * FPS):
            self._s1 = self.a * self._s1 + (1 - self.a) * pre(t)
            self._s2 = self.a * self._s2 + (1 - self.a) * self._s1
        self._e = 0.3
        self._noise = _Noise(self.seed, 1, 3)

    def step(self, energy: float) -> np.ndarray:
        """Advance one frame with speech energy ``energy`` (0-1); return float64 (3,)
        ``(roll_deg, dx, dy)`` (dx, dy in eye distances)."""
        x = self._noise(self.t)
        self.t += 1
        self._s1 = self.a * self._s1 + (1 - self.a) * x
        self._s2 = self.a * self._s2 + (1 - self.a) * self._s1
        e = float(np.clip(energy, 0.0, 1.0))
        c = self.att if e > self._e else self.rel
        self._e = c * self._e + (1 - c) * e
        return self.amplitude * (0.35 + 0.65 * self._e) * self.norm * self._s2 * self.SCALE

    @staticmethod
    def transform(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The 2x3 similarity (pixels) for ``pose`` on a face with 68 rest ``points``: rotate by
        the roll about a pivot 0.6 eye distances below the chin, then shift."""
        from tf_talkface.animate.photo_warp import face_frame

        c, right, down, dist = face_frame(points)
        chin = np.asarray(points, np.float64)[8]
        pivot = chin + 0.6 * dist * down
        th = math.radians(float(pose[0]))
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        shift = dist * (pose[1] * right + pose[2] * down)
        return np.hstack([rot, (pivot - rot @ pivot + shift)[:, None]])


BLINK_PROFILE = np.array([0.35, 0.8, 1.0, 0.95, 0.65, 0.3, 0.1])
"""Eyelid closure (0 open, 1 shut) over the 7 frames (280 ms) of a blink."""


class Blinker:
    """Blink closure per frame: first blink after 0.8-2.5 s, then gaps of 2-5 s (uniform) between
    blink starts, each following :data:`BLINK_PROFILE`. Deterministic under ``seed`` and
    independent of the chunking (the schedule depends only on the frame index).

    Args:
        enabled: False = never blink (closure 0).
        seed: random seed.
    """

    def __init__(self, enabled: bool = True, seed: int = 0):
        self.enabled = bool(enabled)
        self.seed = int(seed)
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng([self.seed, 3])
        self._starts = [int(round(self._rng.uniform(0.8, 2.5) * FPS))]

    def closure(self, t: int) -> float:
        """Eyelid closure (0-1) at frame ``t``."""
        if not self.enabled:
            return 0.0
        while self._starts[-1] <= t:
            self._starts.append(self._starts[-1] + int(round(self._rng.uniform(2.0, 5.0) * FPS)))
        for s in reversed(self._starts):
            if s <= t:
                k = t - s
                return float(BLINK_PROFILE[k]) if k < len(BLINK_PROFILE) else 0.0
        return 0.0


def apply_blink(points: np.ndarray, closure: float, down: np.ndarray) -> np.ndarray:
    """Close both eyes by ``closure`` (0-1): the upper lids (37, 38 / 43, 44) move 85% and the
    lower lids (41, 40 / 47, 46) 15% of the way to meet, along the face's ``down`` axis.
    Returns a new float64 (68, 2)."""
    p = np.array(points, np.float64, copy=True)
    if closure <= 0:
        return p
    for eye in (RIGHT_EYE, LEFT_EYE):
        for up, lo in ((eye[1], eye[5]), (eye[2], eye[4])):
            gap = float(np.dot(p[lo] - p[up], down))
            if gap <= 0:
                continue
            p[up] += down * (0.85 * closure * gap)
            p[lo] -= down * (0.15 * closure * gap)
    return p


ENERGY_FLOOR_DB = -55.0
ENERGY_CEIL_DB = -15.0


class EnergyMeter:
    """Speech energy per 40-ms frame from audio chunks: frame t covers samples
    ``[t * hop, (t + 1) * hop)`` with ``hop = sample_rate / 25``; its RMS level in dBFS is mapped
    linearly from [-55, -15] dBFS to [0, 1] (clipped). :meth:`push` returns the frames completed
    so far, :meth:`flush` the last partial one; the values do not depend on the chunking.

    Args:
        sample_rate: Hz (a multiple of 25 keeps frames aligned to whole samples; others are
            rounded per frame boundary).
    """

    def __init__(self, sample_rate: int):
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float64)
        self.frames = 0

    def _bound(self, t: int) -> int:
        return int(round(t * self.sample_rate / FPS))

    @staticmethod
    def level(x: np.ndarray) -> float:
        """Energy (0-1) of one frame of samples."""
        if len(x) == 0:
            return 0.0
        rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
        db = 20 * math.log10(max(rms, 1e-10))
        return float(np.clip((db - ENERGY_FLOOR_DB) / (ENERGY_CEIL_DB - ENERGY_FLOOR_DB), 0, 1))

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add mono samples; return float64 (n,) energies of the frames completed."""
        x = np.asarray(samples, np.float64).reshape(-1)
        self._pending = np.concatenate([self._pending, x])
        out = []
        while True:
            n = self._bound(self.frames + 1) - self._bound(self.frames)
            if len(self._pending) < n:
                break
            out.append(self.level(self._pending[:n]))
            self._pending = self._pending[n:]
            self.frames += 1
        return np.array(out, np.float64)

    def flush(self) -> np.ndarray:
        """The last partial frame's energy (empty when none); resets."""
        out = np.array([self.level(self._pending)] if len(self._pending) else [], np.float64)
        self.reset()
        return out


def frame_energy(audio: np.ndarray, sample_rate: int, n_frames: int | None = None) -> np.ndarray:
    """Speech energy (0-1) of every 40-ms frame of a whole waveform (:class:`EnergyMeter`).

    Args:
        audio: float mono (samples,) in [-1, 1].
        sample_rate: Hz.
        n_frames: pad with zeros (silence) or cut to this many frames (the landmark count).

    Returns:
        float64 (frames,).
    """
    m = EnergyMeter(sample_rate)
    e = np.concatenate([m.push(audio), m.flush()])
    if n_frames is not None:
        e = np.concatenate([e, np.zeros(max(0, n_frames - len(e)))])[:n_frames]
    return e
