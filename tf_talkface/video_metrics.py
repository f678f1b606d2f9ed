"""Image-quality and lip-sync metrics of generated talking-face frames (ATVGnet, DAVS).

The metrics of ATVGnet's evaluation code (Chen et al., CVPR 2019; ``code/evaluation_matrix.py``
of the original repository, summarised in ``shared/docs/atvgnet_davs.md`` A9), computed with
well-kept libraries:

- **LMD** (landmark distance): dlib's 68 points on the real and the generated frame, mouth
  points 48-67 each centred on its own mean, the Euclidean distance per point; reported as the
  mean over points (pixels at the evaluation size) and, as the original, the per-frame **sum**
  over the 20 points. We differ on purpose in one place: dlib's face *detector* runs on the real
  frame only and the shape predictor runs on both frames in that box, so a blurry generated
  frame that HOG would miss is still measured (the original drops such samples). Frames whose
  real image has no detectable face are skipped and counted.
- **SSIM**: both frames resized to 256x256 (``cv2.INTER_AREA``), scikit-image's
  ``structural_similarity`` on RGB (7x7 uniform window, ``data_range`` 255), as the original's
  ``compare_ssim(multichannel=True)``.
- **PSNR**: grey images at 256x256, MAX 255 (scikit-image ``peak_signal_noise_ratio``).
- **CPBD**: the ``cpbd`` package (Narvekar & Karam's cumulative probability of blur detection)
  on the grey generated frame **at its own size** (the original scored its 128-px generated
  frames); higher = sharper. The original ran its own port of the same algorithm. Not at the
  256 px of SSIM/PSNR on purpose: ``INTER_AREA`` enlarges by pixel replication, whose 1-px steps
  CPBD reads as perfectly sharp edges (every 128-px crop scored 1.0 there); when a size is asked
  for, enlarging uses ``INTER_CUBIC``.

Frames are ``uint8 (H, W, 3)`` RGB arrays. No TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVAL_SIZE = 256
"""Side in pixels at which SSIM, PSNR, CPBD and LMD are computed (the original's 256 px)."""

MOUTH = slice(48, 68)


class MetricsError(ValueError):
    """Frames that cannot be compared (shape or dtype); the message says which."""


def _check_pair(real: np.ndarray, fake: np.ndarray) -> None:
    for name, a in (("real", real), ("generated", fake)):
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            raise MetricsError(f"{name} frame must be uint8 (H, W, 3) RGB, got {a.dtype} {a.shape}")
    if real.shape != fake.shape:
        raise MetricsError(f"real {real.shape} and generated {fake.shape} frames differ in size")


def resize_eval(frame: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """``uint8 (size, size, C)``: ``frame`` resized with ``cv2.INTER_AREA`` (the original's
    resize before SSIM/PSNR). Non-square frames are stretched, as in the original."""
    import cv2

    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def ssim(real: np.ndarray, fake: np.ndarray, size: int = EVAL_SIZE) -> float:
    """SSIM of two RGB ``uint8 (H, W, 3)`` frames at ``size`` px (scikit-image defaults: 7x7
    uniform window, ``data_range`` 255, mean over channels). 1 = identical.

    Raises:
        MetricsError: shapes or dtypes do not fit.
    """
    from skimage.metrics import structural_similarity

    _check_pair(real, fake)
    return float(structural_similarity(resize_eval(real, size), resize_eval(fake, size),
                                       channel_axis=-1, data_range=255))


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def psnr(real: np.ndarray, fake: np.ndarray, size: int = EVAL_SIZE) -> float:
    """PSNR in dB of the grey versions of two RGB ``uint8`` frames at ``size`` px (MAX 255), as
    the original. ``inf`` for identical frames.

    Raises:
        MetricsError: shapes or dtypes do not fit.
    """
    from skimage.metrics import peak_signal_noise_ratio

    _check_pair(real, fake)
    a, b = _grey(resize_eval(real, size)), _grey(resize_eval(fake, size))
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def _cpbd_module():
    # cpbd 1.0.7 imports ``scipy.ndimage.imread`` at module level (used only by its own command
    # line; removed from SciPy in 1.2). Give it a stand-in so the metric itself can be imported.
    import scipy.ndimage

    if not hasattr(scipy.ndimage, "imread"):
        scipy.ndimage.imread = None
    import cpbd

    return cpbd


def cpbd(frame: np.ndarray, size: int | None = None) -> float:
    """CPBD sharpness (0..1, higher = sharper) of one RGB ``uint8 (H, W, 3)`` frame, grey, by
    the ``cpbd`` package; at the frame's own size, or resized to ``size`` px (``INTER_AREA`` to
    shrink, ``INTER_CUBIC`` to enlarge: pixel replication would fake sharp edges).

    Raises:
        MetricsError: not a uint8 RGB frame.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3:
        raise MetricsError(f"frame must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
    if size is not None and (frame.shape[0], frame.shape[1]) != (size, size):
        import cv2

        grow = size > min(frame.shape[:2])
        frame = cv2.resize(frame, (size, size),
                           interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)
    return float(_cpbd_module().compute(_grey(frame)))


def mouth_points_pair(real: np.ndarray, fake: np.ndarray, size: int = EVAL_SIZE
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """dlib's 68 points of the real and the generated frame at ``size`` px, the face box found
    on the real frame used for both (module docstring); ``None`` when the real frame has no face.

    Returns:
        ``(real_points, fake_points)``, float64 (68, 2) pixels at ``size``.
    """
    import dlib

    from tf_talkface.face.landmarks import dlib_models

    _check_pair(real, fake)
    detector, predictor = dlib_models()
    g_real, g_fake = _grey(resize_eval(real, size)), _grey(resize_eval(fake, size))
    rects = detector(g_real, 1)
    if not rects:
        return None
    box = max(rects, key=lambda r: r.area())
    box = dlib.rectangle(box.left(), box.top(), box.right(), box.bottom())
    p_real = np.array([(q.x, q.y) for q in predictor(g_real, box).parts()], np.float64)
    p_fake = np.array([(q.x, q.y) for q in predictor(g_fake, box).parts()], np.float64)
    return p_real, p_fake


def mouth_lmd(p_real: np.ndarray, p_fake: np.ndarray) -> tuple[float, float]:
    """``(mean, sum)`` over the 20 mouth points (48-67, each set centred on its own mean) of the
    Euclidean distance in pixels. The original reports the sum."""
    a = p_real[MOUTH] - p_real[MOUTH].mean(0)
    b = p_fake[MOUTH] - p_fake[MOUTH].mean(0)
    d = np.linalg.norm(a - b, axis=1)
    return float(d.mean()), float(d.sum())


@dataclass
class VideoScores:
    """Per-frame scores of one clip (or many, concatenated); :meth:`summary` averages them."""

    ssim: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    cpbd: list[float] = field(default_factory=list)
    cpbd_real: list[float] = field(default_factory=list)
    lmd: list[float] = field(default_factory=list)
    lmd_sum: list[float] = field(default_factory=list)
    frames: int = 0
    no_face: int = 0

    def add(self, real: np.ndarray, fake: np.ndarray, sharpness: bool = True) -> None:
        """Score one pair of RGB ``uint8 (H, W, 3)`` frames (same size); CPBD of both (the real
        frame's is the reference a generator should reach)."""
        self.frames += 1
        self.ssim.append(ssim(real, fake))
        self.psnr.append(psnr(real, fake))
        if sharpness:
            self.cpbd.append(cpbd(fake))
            self.cpbd_real.append(cpbd(real))
        pts = mouth_points_pair(real, fake)
        if pts is None:
            self.no_face += 1
        else:
            m, s = mouth_lmd(*pts)
            self.lmd.append(m)
            self.lmd_sum.append(s)

    def extend(self, other: "VideoScores") -> None:
        for k in ("ssim", "psnr", "cpbd", "cpbd_real", "lmd", "lmd_sum"):
            getattr(self, k).extend(getattr(other, k))
        self.frames += other.frames
        self.no_face += other.no_face

    def summary(self) -> dict:
        """Means (NaN where nothing was measured); PSNR's ``inf`` (identical frames) is left out
        of its mean and counted in ``psnr_identical``."""
        def mean(v):
            v = [x for x in v if np.isfinite(x)]
            return float(np.mean(v)) if v else float("nan")

        return {"frames": self.frames, "ssim": mean(self.ssim), "psnr": mean(self.psnr),
                "psnr_identical": int(sum(1 for x in self.psnr if not np.isfinite(x))),
                "cpbd": mean(self.cpbd), "cpbd_real": mean(self.cpbd_real), "lmd": mean(self.lmd), "lmd_sum": mean(self.lmd_sum),
                "lmd_frames": len(self.lmd), "no_face": self.no_face, "eval_size": EVAL_SIZE}


def score_clip(real_frames: np.ndarray, fake_frames: np.ndarray, sharpness: bool = True
               ) -> VideoScores:
    """Scores of a generated clip against the real one, frame by frame.

    Args:
        real_frames, fake_frames: ``uint8 (T, H, W, 3)`` RGB, same shape.
        sharpness: compute CPBD (the slowest metric).

    Raises:
        MetricsError: the clips differ in shape or are not uint8 RGB.
    """
    if real_frames.shape != fake_frames.shape or real_frames.ndim != 4:
        raise MetricsError(f"real {real_frames.shape} and generated {fake_frames.shape} clips "
                           "must both be (T, H, W, 3)")
    s = VideoScores()
    for r, f in zip(real_frames, fake_frames):
        s.add(r, f, sharpness=sharpness)
    return s
