"""Replication toolkit: check a speech-driven face model against landmarks of real video.

The public replication project of Eskimez et al. 2020 (``code/replication.py``: its ``Video``,
``DlibProcess``, ``DataProcess`` and ``Draw`` classes; ``docs/reference.md``, "Replication
toolkit") gave researchers the missing tools to compare a model's predicted landmarks with the
landmarks of a real video of the same speech. This module does the same jobs with this library's
own building blocks (dlib extraction :mod:`tf_talkface.face.landmarks`, Procrustes / closed mouth
/ identity removal :mod:`tf_talkface.face.normalize`, metrics :mod:`tf_talkface.metrics`,
drawing, plots and mp4 writing :mod:`tf_talkface.viz`)::

    python -m tf_talkface.replicate extract obama2s.mp4 obama2s.npy          # DlibProcess
    python -m tf_talkface.replicate align obama2s.npy aligned.npy           # get_procrustes
    python -m tf_talkface.replicate resample a.npy b.npy --from-fps 29.97   # interpolate_lmarks
    python -m tf_talkface.replicate closed-mouth aligned.npy                # get_closed_mouth_frame
    python -m tf_talkface.replicate remove-identity a.npy b.npy --template t.npy  # remove_identity
    python -m tf_talkface.replicate rmse pred.npy --video obama2s.mp4       # mouth RMSE vs video
    python -m tf_talkface.replicate compare-video obama2s.mp4 pred.npy cmp.mp4 --frame-numbers
    python -m tf_talkface.replicate plot-frame obama2s.npy 30 frame30.png   # Draw, annot=True
    python -m tf_talkface.replicate plot-sequence obama2s.npy aligned.png   # save_plots_proc

Conventions
-----------
* Landmark sequences are float arrays ``(frames, 68, D)``, D = 2 (x, y) or 3, dlib's point
  order, image convention (y down). Extracted landmarks are in **pixels** of the full-resolution
  video frame; model predictions are in the model's **normalised** coordinates; Procrustes-aligned
  sequences are in the **unit-norm Procrustes frame** (the reference standardised: centred on its
  mean point, Frobenius norm 1; each frame centred, rotated and scaled onto it by scipy's
  ``procrustes``, which leaves it a norm of 0.98-1. The RMS distance of a point from the face
  centre is then ~1/sqrt(68) = 0.121: an RMSE of 0.0012 is ~1 % of that).
* Frames are at 25 fps unless a function takes an explicit frame rate; videos at other rates
  (e.g. 29.97 fps) are resampled in time (:func:`resample_sequence`).
* **Frames without a face** (the detector found none: e.g. the 13-frame title card at the start
  of ``obama2s.mp4``) are NaN rows. Unlike the library's training pipeline (which interpolates
  short gaps and refuses long ones), every function here passes NaN frames through unchanged and
  leaves them out of every statistic (reference shapes, z-scores, RMSE), as the toolkit does
  (``np.nanmean``, ``nan_policy='omit'``); the RMSE reports which frames were excluded.

Differences from the toolkit (on purpose): resampling is time-based (frame i at i/fps s, see
:func:`tf_talkface.face.landmarks.resample_fps`) instead of a ``linspace`` over the frame index
that stretches the clip by up to one frame; the closed-mouth z-threshold default is 1.0 (the
library's ``RecipeConfig.mouth_z_thresh``; the toolkit used 1.3); point numbers in plots are
0-based (dlib's indices; the toolkit wrote 1-based numbers).
"""
from __future__ import annotations

import os

from tf_talkface.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from tf_talkface.atomic import atomic_output
from tf_talkface.config import FPS, LandmarkConfig
from tf_talkface.face import normalize as nz
from tf_talkface.face.topology import MOUTH
from tf_talkface.files import InputError, load_npy, save_npy
from tf_talkface.metrics import mouth_opening_correlation, rmse
from tf_talkface.viz.draw import draw_face, draw_lines
from tf_talkface.viz.plots import pyplot, save_figure
from tf_talkface.viz.render import render_frames
from tf_talkface.viz.video_io import write_video

__all__ = [
    "ReplicateError", "UNITS", "OVERLAY_COLOR", "OVERLAY_MOUTH_COLOR", "CROPS",
    "valid_frames", "video_landmarks", "extract_sequence", "align_sequence",
    "resample_sequence", "closed_mouth", "remove_identity_sequence", "mouth_rmse_vs_landmarks",
    "mouth_rmse_vs_video", "source_frame_indices", "comparison_frames", "comparison_video",
    "plot_frame", "plot_aligned_sequence", "build_parser", "main",
]

UNITS = "unit-norm Procrustes frame (faces centred, Frobenius norm ~1)"
OVERLAY_COLOR = (0, 255, 0)
"""RGB of the landmark lines/points drawn over video frames (the mouth uses
:data:`OVERLAY_MOUTH_COLOR`)."""
OVERLAY_MOUTH_COLOR = (255, 0, 255)
CROPS = ("full", "face")


class ReplicateError(ValueError):
    """Bad input for the replication toolkit; the message names the file (when there is one)
    and the problem."""


# --------------------------------------------------------------------------------- checks


def _check_seq(seq, name: str = "landmarks", allow_nan: bool = True) -> np.ndarray:
    """Validate ``(frames, 68, D)``, D in {2, 3}, frames >= 1; return float64."""
    a = np.asarray(seq)
    if a.ndim != 3 or a.shape[1] != 68 or a.shape[2] not in (2, 3):
        raise ReplicateError(f"{name}: expected landmarks of shape (frames, 68, 2|3), got "
                             f"{a.shape}")
    if a.shape[0] == 0:
        raise ReplicateError(f"{name}: empty sequence (0 frames)")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ReplicateError(f"{name}: landmarks must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if np.isinf(a).any():
        raise ReplicateError(f"{name}: contains inf")
    if not allow_nan and np.isnan(a).any():
        raise ReplicateError(f"{name}: contains NaN (frames without a face)")
    return a


def valid_frames(seq: np.ndarray) -> np.ndarray:
    """Boolean ``(frames,)``: True where every coordinate of the frame is finite (a face)."""
    a = np.asarray(seq)
    return np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1)


def _need_valid(a: np.ndarray, name: str, minimum: int = 1) -> np.ndarray:
    ok = valid_frames(a)
    if ok.sum() < minimum:
        raise ReplicateError(f"{name}: {int(ok.sum())} of {len(a)} frames have a face (no NaN); "
                             f"need at least {minimum}")
    return ok


def _ranges(idx: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    idx = sorted(int(i) for i in idx)
    out, start = [], None
    for k, i in enumerate(idx):
        if start is None:
            start = i
        if k + 1 == len(idx) or idx[k + 1] != i + 1:
            out.append(f"{start}-{i}" if i > start else f"{start}")
            start = None
    return ", ".join(out)


# ------------------------------------------------------------------------- landmarks


def video_landmarks(video_path, cfg: LandmarkConfig | None = None):
    """dlib landmarks of every frame of a video at its native frame rate, frames without a face
    left as NaN rows (toolkit: ``DlibProcess`` / ``DataProcess.get_all_lmarks``).

    Args:
        video_path: any video ffmpeg reads.
        cfg: detection settings (default :class:`~tf_talkface.config.LandmarkConfig`: grey frames,
            detection at <= 640 px every 5th frame, as the training data).

    Returns:
        :class:`tf_talkface.face.landmarks.VideoLandmarks`: ``points`` float32 (T, 68, 2) in
        pixels at ``fps`` (native) frames/s; NaN rows where no face was found.

    Raises:
        tf_talkface.face.landmarks.FaceError: missing/empty/undecodable file or no frames.
    """
    from tf_talkface.face.landmarks import LandmarkExtractor

    return LandmarkExtractor(cfg).extract(video_path, fill_gaps=False)


def extract_sequence(video_path, fps: float | None = FPS, cfg: LandmarkConfig | None = None
                     ) -> np.ndarray:
    """Landmarks of a video as one array: :func:`video_landmarks` resampled to ``fps``
    (:func:`resample_sequence`; ``None`` = keep the native rate).

    Returns:
        float32 (frames, 68, 2) in pixels at ``fps``; NaN rows for frames without a face.
    """
    v = video_landmarks(video_path, cfg)
    if fps is None:
        return v.points.astype(np.float32)
    return resample_sequence(v.points, v.fps, fps)


def align_sequence(seq: np.ndarray, reference=None) -> np.ndarray:
    """Procrustes alignment of every frame to one reference shape (toolkit:
    ``DataProcess.get_procrustes``, which aligns to the clip mean).

    Each frame is centred, rotated and scaled (scipy's :func:`~scipy.spatial.procrustes`, via
    :func:`tf_talkface.face.normalize.procrustes_align`) to fit the standardised reference
    (centred, Frobenius norm 1); scipy scales the fitted frame by the fit quality, so its norm is
    slightly below 1 (0.98-1 on real faces). Position, scale and in-plane rotation (head pose,
    distance to the camera) are removed; the shape (identity + expression) remains.

    Args:
        seq: (frames, 68, D) any units; NaN frames (no face) allowed.
        reference: ``None`` = the mean of the frames with a face (the toolkit's
            ``np.nanmean`` clip mean), ``"first"`` = the first frame with a face, or a
            (68, D) array (e.g. a template face).

    Returns:
        float32 (frames, 68, D) in the unit-norm Procrustes frame; NaN frames stay NaN.

    Raises:
        ReplicateError: bad shape, no frame with a face, bad reference.
    """
    a = _check_seq(seq)
    ok = _need_valid(a, "align_sequence")
    good = a[ok]
    if reference is None:
        ref = good.mean(axis=0)
    elif isinstance(reference, str):
        if reference != "first":
            raise ReplicateError(f"align_sequence: reference must be None, 'first' or a (68, D) "
                                 f"array, got {reference!r}")
        ref = good[0]
    else:
        ref = np.asarray(reference, np.float64)
        if ref.shape != a.shape[1:]:
            raise ReplicateError(f"align_sequence: reference shape {ref.shape} does not match the "
                                 f"frames' shape {a.shape[1:]}")
        if not np.all(np.isfinite(ref)):
            raise ReplicateError("align_sequence: reference contains NaN or inf")
    try:
        aligned = nz.procrustes_align(good, ref)
    except ValueError as e:  # degenerate shapes
        raise ReplicateError(f"align_sequence: {e}") from None
    out = np.full(a.shape, np.nan, np.float32)
    out[ok] = aligned
    return out


def resample_sequence(seq: np.ndarray, src_fps: float, dst_fps: float = FPS) -> np.ndarray:
    """Change the frame rate of a landmark sequence by linear interpolation in time (toolkit:
    ``DataProcess.interpolate_lmarks``; here :func:`tf_talkface.face.landmarks.resample_fps`).

    Input frame i is at i / src_fps s, output frame j at j / dst_fps s, linearly interpolated
    between its two neighbouring input frames (the last frame is held at the end); the output
    has ``round(frames * dst_fps / src_fps)`` frames (60 frames at 29.97 fps -> 50 at 25 fps).
    An output frame that takes a non-zero weight from a NaN input frame (no face) is NaN.

    Args:
        seq: (frames, 68, D) any units. src_fps, dst_fps: frames per second (> 0).

    Returns:
        float32 (round(frames * dst_fps / src_fps), 68, D), same units.

    Raises:
        ReplicateError: bad shape or frame rate.
    """
    from tf_talkface.face.landmarks import resample_fps

    a = _check_seq(seq)
    for name, v in (("src_fps", src_fps), ("dst_fps", dst_fps)):
        if not (isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0):
            raise ReplicateError(f"resample_sequence: {name} must be a positive frame rate, "
                                 f"got {v!r}")
    bad = ~valid_frames(a)
    out = resample_fps(np.where(bad[:, None, None], 0.0, a), float(src_fps), float(dst_fps))
    if bad.any():
        w = resample_fps(bad.astype(np.float64), float(src_fps), float(dst_fps))
        out[w > 1e-9] = np.nan
    return out.astype(np.float32)


def closed_mouth(seq: np.ndarray, z_thresh: float = 1.0, align: bool = True) -> int:
    """Index of the closed-mouth reference frame (toolkit: ``DataProcess.get_closed_mouth_frame``).

    Among the frames with a face whose inner mouth width (points 60-64) has |z-score| below
    ``z_thresh`` within the clip (rejecting stretched or pursed lips), the one with the smallest
    inner-lip gap (points 61-63 vs 67-65): :func:`tf_talkface.face.normalize.closed_mouth_frame`.

    Args:
        seq: (frames, 68, D); NaN frames allowed (never chosen, not in the z-scores).
        z_thresh: mouth-width |z| limit (if no frame passes, all frames with a face compete).
        align: first Procrustes-align the frames to the clip mean (:func:`align_sequence`), as
            the toolkit does, so that widths and gaps do not depend on the head's distance
            to the camera; False: measure in the given coordinates.

    Returns:
        int, a frame index into ``seq``.

    Raises:
        ReplicateError: bad shape, no frame with a face, z_thresh <= 0.
    """
    a = _check_seq(seq)
    if not z_thresh > 0:
        raise ReplicateError(f"closed_mouth: z_thresh must be > 0, got {z_thresh!r}")
    ok = _need_valid(a, "closed_mouth")
    if align:
        a = align_sequence(a)
    idx = np.flatnonzero(ok)
    return int(idx[nz.closed_mouth_frame(a[ok], z_thresh)])


def remove_identity_sequence(seq: np.ndarray, template: np.ndarray,
                             closed_mouth_index: int | None = None, z_thresh: float = 1.0
                             ) -> np.ndarray:
    """Identity removal: ``seq - seq[closed mouth frame] + template`` (2020 paper; toolkit:
    ``DataProcess.remove_identity``), so the speaker's face shape is replaced by the template
    while the motion is kept; the closed-mouth frame becomes exactly the template.

    The sequence is used as given: align it first (:func:`align_sequence`) and give a template
    in the same coordinates (e.g. a standardised face; the toolkit used the 2020 model's
    ``mean.npy``).

    Args:
        seq: (frames, 68, D); NaN frames stay NaN.
        template: (68, D) template face; a (68, 3) template with 2D landmarks uses its x, y (as
            the toolkit did).
        closed_mouth_index: the reference frame; ``None`` = :func:`closed_mouth` (with
            ``z_thresh``, measured on the aligned frames).

    Returns:
        float32 (frames, 68, D).

    Raises:
        ReplicateError: bad shapes, NaN in the template, or a reference frame out of range or
            without a face.
    """
    a = _check_seq(seq)
    t = np.asarray(template, np.float64)
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.shape == (68, 3) and a.shape[2] == 2:
        t = t[:, :2]
    if t.shape != a.shape[1:]:
        raise ReplicateError(f"remove_identity: template shape {t.shape} does not match the "
                             f"frames' shape {a.shape[1:]}")
    if not np.all(np.isfinite(t)):
        raise ReplicateError("remove_identity: template contains NaN or inf")
    ok = _need_valid(a, "remove_identity")
    if closed_mouth_index is None:
        c = closed_mouth(a, z_thresh)
    else:
        c = int(closed_mouth_index)
        if not -len(a) <= c < len(a):
            raise ReplicateError(f"remove_identity: closed_mouth_index {c} out of range for "
                                 f"{len(a)} frames")
        c %= len(a)
        if not ok[c]:
            raise ReplicateError(f"remove_identity: frame {c} has no face (NaN)")
    out = np.full(a.shape, np.nan, np.float32)
    out[ok] = nz.remove_identity(a[ok], a[c], t)
    return out


# ------------------------------------------------------------------------------ RMSE


def mouth_rmse_vs_landmarks(pred: np.ndarray, true: np.ndarray, pred_fps: float = FPS,
                            true_fps: float = FPS, identity_removal: bool = True,
                            z_thresh: float = 1.0) -> dict:
    """Mouth-only normalised RMSE between a predicted and a true landmark sequence of the same
    speech (toolkit: RMSE between predicted and extracted landmarks, mouth only, normalised).

    Steps: (1) both sequences to 25 fps (:func:`resample_sequence`) and cut to the shorter one
    (both start at t = 0); (2) frames where either has no face (NaN) are excluded; (3) every
    frame of both is Procrustes-aligned (:func:`align_sequence`) onto one reference, the
    true sequence's aligned mean shape, so position, scale and head rotation do not count;
    (4) with ``identity_removal`` each sequence's own closed-mouth frame (:func:`closed_mouth`)
    is subtracted (toolkit identity removal with a common template, which cancels in the
    difference), so the speaker's face shape does not count either: only the motion relative
    to a closed mouth is compared; (5) RMSE over frames, points and x, y
    (:func:`tf_talkface.metrics.rmse`) for the 20 mouth points 48-67 and for all 68.

    Args:
        pred: (frames, 68, D) predicted landmarks at ``pred_fps`` (any units, e.g. normalised).
        true: (frames, 68, D) true landmarks at ``true_fps`` (e.g. pixels of the video).
        pred_fps, true_fps: frames per second.
        identity_removal: headline numbers with (True) or without (False) identity removal;
            both variants are always in the result.
        z_thresh: mouth-width z-score filter of the closed-mouth frames.

    Returns:
        dict (JSON-serialisable): ``mouth_rmse``, ``all_rmse`` (headline, in :data:`UNITS`),
        ``mouth_rmse_procrustes`` / ``all_rmse_procrustes`` (steps 1-3 only),
        ``mouth_rmse_identity_removed`` / ``all_rmse_identity_removed`` (steps 1-4),
        ``mouth_open_r`` (Pearson r over time of the inner-lip gap of the aligned sequences; NaN
        if either is constant), ``identity_removal``, ``units``, ``fps`` (25),
        ``frames_pred`` / ``frames_true`` (frames at 25 fps), ``frames_common`` (the shorter),
        ``frames_compared`` (used), ``frames_excluded`` (indices at 25 fps without a face in
        either sequence), ``closed_mouth_pred`` / ``closed_mouth_true`` (indices at 25 fps).

    Raises:
        ReplicateError: bad shapes, different D, or fewer than 2 frames to compare.
    """
    p = resample_sequence(_check_seq(pred, "prediction"), pred_fps, FPS).astype(np.float64)
    t = resample_sequence(_check_seq(true, "true landmarks"), true_fps, FPS).astype(np.float64)
    if p.shape[2] != t.shape[2]:
        raise ReplicateError(f"prediction is {p.shape[2]}D but the true landmarks are "
                             f"{t.shape[2]}D")
    n = min(len(p), len(t))
    ok = valid_frames(p[:n]) & valid_frames(t[:n])
    if ok.sum() < 2:
        raise ReplicateError(f"only {int(ok.sum())} of {n} common frames have a face in both "
                             "sequences; need at least 2")
    pv, tv = p[:n][ok], t[:n][ok]
    ref = align_sequence(tv).mean(axis=0)
    pa = align_sequence(pv, ref).astype(np.float64)
    ta = align_sequence(tv, ref).astype(np.float64)
    cp = nz.closed_mouth_frame(pa, z_thresh)
    ct = nz.closed_mouth_frame(ta, z_thresh)
    pi, ti = pa - pa[cp], ta - ta[ct]
    idx = np.flatnonzero(ok)
    res = {
        "mouth_rmse_procrustes": rmse(pa, ta, points=MOUTH),
        "all_rmse_procrustes": rmse(pa, ta),
        "mouth_rmse_identity_removed": rmse(pi, ti, points=MOUTH),
        "all_rmse_identity_removed": rmse(pi, ti),
        "mouth_open_r": mouth_opening_correlation(pa, ta),
    }
    key = "identity_removed" if identity_removal else "procrustes"
    return {
        "mouth_rmse": res[f"mouth_rmse_{key}"], "all_rmse": res[f"all_rmse_{key}"], **res,
        "identity_removal": bool(identity_removal), "units": UNITS, "fps": float(FPS),
        "frames_pred": int(len(p)), "frames_true": int(len(t)), "frames_common": int(n),
        "frames_compared": int(ok.sum()),
        "frames_excluded": [int(i) for i in np.flatnonzero(~ok)],
        "closed_mouth_pred": int(idx[cp]), "closed_mouth_true": int(idx[ct]),
    }


def mouth_rmse_vs_video(pred: np.ndarray, video_path, pred_fps: float = FPS,
                        identity_removal: bool = True, z_thresh: float = 1.0,
                        cfg: LandmarkConfig | None = None, landmarks=None) -> dict:
    """:func:`mouth_rmse_vs_landmarks` of a prediction against the dlib landmarks extracted from
    a real video of the same speech (e.g. ``obama2s.mp4`` and the model's output on its sound).

    Frames of the video without a face (the title card of ``obama2s.mp4``) are NaN in the
    extraction and excluded from the comparison (``frames_excluded``), not interpolated.

    Args:
        pred: (frames, 68, 2) prediction at ``pred_fps`` (normalised units are fine: scale does
            not count).
        video_path: the video (any frame rate; its landmarks are resampled to 25 fps).
        identity_removal, z_thresh: see :func:`mouth_rmse_vs_landmarks`.
        cfg: detection settings for :func:`video_landmarks`.
        landmarks: an already extracted :class:`~tf_talkface.face.landmarks.VideoLandmarks` of
            ``video_path`` (skips the extraction).

    Returns:
        the dict of :func:`mouth_rmse_vs_landmarks` plus ``video`` (path), ``video_fps`` (native)
        and ``video_frames`` (native frame count).

    Raises:
        ReplicateError: see :func:`mouth_rmse_vs_landmarks` (messages name the video).
        tf_talkface.face.landmarks.FaceError: the video cannot be read.
    """
    v = video_landmarks(video_path, cfg) if landmarks is None else landmarks
    try:
        res = mouth_rmse_vs_landmarks(pred, v.points, pred_fps, v.fps, identity_removal, z_thresh)
    except ReplicateError as e:
        raise ReplicateError(f"{video_path}: {e}") from None
    res.update(video=str(video_path), video_fps=float(v.fps), video_frames=int(v.n_frames))
    return res


# ------------------------------------------------------------------- comparison video


def source_frame_indices(n_out: int, src_fps: float, n_src: int, out_fps: float = FPS
                         ) -> np.ndarray:
    """For output frames j = 0..n_out-1 at ``out_fps``, the source frame nearest in time:
    ``floor(j * src_fps / out_fps + 0.5)``, clamped to ``n_src - 1`` (the last frame is held
    when the output is longer). int64 (n_out,)."""
    j = np.arange(int(n_out), dtype=np.float64)
    k = np.floor(j * float(src_fps) / float(out_fps) + 0.5).astype(np.int64)
    return np.minimum(k, max(int(n_src) - 1, 0))


def _even(x: float) -> int:
    return max(16, int(round(x / 2.0)) * 2)


def _crop_box(points: np.ndarray, width: int, height: int, crop: str
              ) -> tuple[float, float, float, float]:
    """(x0, y0, w, h) of the source region shown in the left panel."""
    if crop == "full":
        return 0.0, 0.0, float(width), float(height)
    ok = valid_frames(points)
    if not ok.any():
        return 0.0, 0.0, float(width), float(height)
    pts = points[ok].reshape(-1, points.shape[-1])[:, :2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = min(float((hi - lo).max()) * 1.5, float(min(width, height)))
    c = (lo + hi) / 2.0
    x0 = float(np.clip(c[0] - side / 2.0, 0.0, width - side))
    y0 = float(np.clip(c[1] - side / 2.0, 0.0, height - side))
    return x0, y0, side, side


def _outlined_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    th = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, font, scale, (0, 0, 0), th + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, (255, 255, 255), th, cv2.LINE_AA)


def comparison_frames(video_path, pred: np.ndarray, style: str = "lines",
                      frame_numbers: bool = False, size: int = 320, crop: str = "full",
                      landmarks=None, cfg: LandmarkConfig | None = None,
                      titles: tuple[str, str] | None = ("video + landmarks", "prediction"),
                      ) -> Iterator[np.ndarray]:
    """The frames of :func:`comparison_video`, one RGB image per prediction frame (lazily).

    Left panel: the video frame nearest in time (:func:`source_frame_indices`; a 29.97 fps
    video is thereby resampled to 25 fps) resized with ``cv2.INTER_AREA`` to ``size`` pixels
    high, aspect kept (``crop="face"``: a fixed square around the face over the whole clip,
    ``size`` x ``size``), with that frame's extracted landmarks drawn on it
    (:data:`OVERLAY_COLOR`, mouth :data:`OVERLAY_MOUTH_COLOR`; nothing where no face was found).
    Right panel: the prediction, ``size`` x ``size``, drawn by
    :func:`tf_talkface.viz.render.render_frames`
    (``"lines"`` or ``"painted"``, one view fitted over the whole prediction).
    ``frame_numbers``: "frame j  t s  (video frame k)" at the bottom left.

    Args:
        video_path: the real video. pred: (F, 68, 2|3) prediction at 25 fps (any units).
        style: ``"lines"`` or ``"painted"``. size: panel height in pixels (>= 64).
        crop: ``"full"`` (the whole frame) or ``"face"``.
        landmarks: an already extracted :class:`~tf_talkface.face.landmarks.VideoLandmarks`
            of the video (default: :func:`video_landmarks` with ``cfg``).
        titles: (left, right) panel titles, or None.

    Yields:
        uint8 (size, left width + size, 3) RGB images, F of them.

    Raises:
        ReplicateError (at call time): bad prediction, style, size or crop.
        tf_talkface.face.landmarks.FaceError: the video cannot be read.
    """
    from tf_talkface.face.landmarks import iter_frames

    p = _check_seq(pred, "prediction")
    if style not in ("lines", "painted"):
        raise ReplicateError(f"style must be 'lines' or 'painted', got {style!r}")
    if crop not in CROPS:
        raise ReplicateError(f"crop must be one of {CROPS}, got {crop!r}")
    if not (isinstance(size, (int, np.integer)) and size >= 64):
        raise ReplicateError(f"size must be an integer >= 64 (pixels), got {size!r}")
    size = int(size)
    v = video_landmarks(video_path, cfg) if landmarks is None else landmarks
    x0, y0, bw, bh = _crop_box(v.points, v.width, v.height, crop)
    ph = size
    pw = size if crop == "face" else _even(size * bw / bh)
    sx, sy = pw / bw, ph / bh
    src_idx = source_frame_indices(len(p), v.fps, v.n_frames)
    right = render_frames(p, style, (size, size), title=titles[1] if titles else None)
    return _comparison_iter(iter_frames(video_path, "rgb24"), v.points, src_idx, right,
                            (x0, y0, bw, bh), (pw, ph), (sx, sy), frame_numbers, titles,
                            draw_lines)


def _comparison_iter(frames, points, src_idx, right, box, panel, scale, frame_numbers, titles,
                     draw_lines) -> Iterator[np.ndarray]:
    import cv2

    x0, y0, bw, bh = box
    pw, ph = panel
    sx, sy = scale
    ix0, iy0 = int(round(x0)), int(round(y0))
    ix1, iy1 = int(round(x0 + bw)), int(round(y0 + bh))
    cur, cur_i = None, -1
    text_scale = 0.45 * ph / 320
    for j, (k, rimg) in enumerate(zip(src_idx, right)):
        while cur_i < k:
            nxt = next(frames, None)
            if nxt is None:  # the decoder gave fewer frames than counted: hold the last one
                break
            cur, cur_i = nxt, cur_i + 1
        if cur is None:
            raise ReplicateError("the video gave no frames")
        left = cv2.resize(np.ascontiguousarray(cur[iy0:iy1, ix0:ix1]), (pw, ph),
                          interpolation=cv2.INTER_AREA)
        kk = min(int(k), len(points) - 1)
        pts = points[kk, :, :2].astype(np.float64)
        if np.all(np.isfinite(pts)):
            # pixel centres: a source pixel centre x maps to (x - x0 + 0.5) * s - 0.5
            px = np.stack([(pts[:, 0] - x0 + 0.5) * sx - 0.5, (pts[:, 1] - y0 + 0.5) * sy - 0.5], 1)
            left = draw_lines(px, image=left, color=OVERLAY_COLOR, mouth_color=OVERLAY_MOUTH_COLOR,
                              point_radius=max(1.0, ph / 256))
        else:
            _outlined_text(left, "no face", (8, ph // 2), text_scale)
        if titles:
            _outlined_text(left, titles[0], (8, int(round(22 * ph / 320))), text_scale)
        img = np.concatenate([left, rimg], axis=1)
        img[:, pw - 1:pw + 1] = (150, 150, 150)
        if frame_numbers:
            _outlined_text(img, f"frame {j}  {j / FPS:.2f} s  (video frame {kk})",
                           (8, ph - 10), text_scale)
        yield img


def comparison_video(video_path, pred: np.ndarray, out_mp4, style: str = "lines",
                     frame_numbers: bool = False, size: int = 320, crop: str = "full",
                     landmarks=None, cfg: LandmarkConfig | None = None,
                     titles: tuple[str, str] | None = ("video + landmarks", "prediction"),
                     progress: bool = False) -> Path:
    """Side-by-side mp4: the original video with its extracted landmarks | the prediction,
    synchronised frame by frame at 25 fps, with the video's own sound (toolkit:
    ``Video.combine_h`` of the scaled original and the painted prediction).

    The mp4 (H.264 + AAC, :func:`tf_talkface.viz.video_io.write_video`, written atomically) has exactly
    ``len(pred)`` frames at 25 fps; the sound starts at t = 0 with the first frame. See
    :func:`comparison_frames` for the panels and the arguments.

    Returns:
        ``Path(out_mp4)``.

    Raises:
        ReplicateError: bad arguments. FaceError / AudioError: unreadable video or no sound.
        ValueError: ``out_mp4`` does not end in ``.mp4``.
    """
    if Path(out_mp4).suffix.lower() != ".mp4":
        raise ReplicateError(f"{out_mp4}: the output must end in .mp4")
    frames = comparison_frames(video_path, pred, style, frame_numbers, size, crop, landmarks,
                               cfg, titles)
    return write_video(out_mp4, frames, fps=FPS, audio=video_path, n_frames=len(pred),
                       progress=progress)


# ------------------------------------------------------------------------------ plots


def _frame_axes(points: np.ndarray, figsize: float = 6.0):
    fig, ax = pyplot().subplots(figsize=(figsize, figsize))
    ax.set_aspect("equal")
    lo, hi = points[..., 0:2].reshape(-1, 2).min(0), points[..., 0:2].reshape(-1, 2).max(0)
    pad = 0.08 * float((hi - lo).max() or 1.0)
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(hi[1] + pad, lo[1] - pad)  # image convention: y down
    ax.set_xticks([])
    ax.set_yticks([])
    return fig, ax


def plot_frame(seq: np.ndarray, index: int, out_png, numbers: bool = True,
               title: str | None = None) -> Path:
    """One frame of a sequence as a PNG: the points and the face's edges (mouth in red), with
    each point's number 0..67 written beside it (toolkit: ``Draw.save_scatter_frame`` /
    ``annotate``; it wrote 1-based numbers).

    Args:
        seq: (frames, 68, D) any units (image convention, y down); a single (68, D) shape works.
        index: frame number (negative counts from the end).
        out_png: destination (written atomically; folders created).
        numbers: write the point numbers.
        title: default "frame INDEX".

    Returns:
        ``Path(out_png)``.

    Raises:
        ReplicateError: bad shape, index out of range, or no face (NaN) in that frame.
    """
    a = np.asarray(seq)
    if a.ndim == 2:
        a = a[None]
    a = _check_seq(a)
    n = len(a)
    if not -n <= int(index) < n:
        raise ReplicateError(f"plot_frame: frame {index} out of range for {n} frames")
    f = int(index) % n
    pts = a[f]
    if not np.all(np.isfinite(pts)):
        raise ReplicateError(f"plot_frame: frame {f} has no face (NaN)")
    fig, ax = _frame_axes(pts)
    draw_face(ax, pts, color="#1f4e9c", lw=1.0, ms=2.5, mouth_color="#d62728")
    if numbers:
        _point_numbers(ax, pts[:, :2])
    ax.set_title(title if title is not None else f"frame {f}", fontsize=10)
    return save_figure(fig, _png_path(out_png), dpi=120)


def _point_numbers(ax, pts: np.ndarray) -> None:
    """Write 0..67 beside the points: pushed away from the face centre, the inner-lip numbers
    (60-67) towards the mouth centre, so that neighbours such as 54/64 and 48/60 do not
    overlap."""
    span = float((pts.max(0) - pts.min(0)).max()) or 1.0
    centre = pts.mean(axis=0)
    mouth_centre = pts[60:68].mean(axis=0)
    for i, q in enumerate(pts):
        d = (mouth_centre - q) if 60 <= i < 68 else (q - centre)
        n = float(np.hypot(*d))
        d = d / n if n > 1e-12 else np.array([1.0, 0.0])
        ha = "left" if d[0] > 0.35 else "right" if d[0] < -0.35 else "center"
        va = "top" if d[1] > 0.35 else "bottom" if d[1] < -0.35 else "center"  # y down
        x, y = q + d * 0.008 * span
        ax.text(x, y, str(i), fontsize=6.5, color="#222222", ha=ha, va=va)


def plot_aligned_sequence(seq: np.ndarray, out_png, title: str | None = None) -> Path:
    """All frames of the Procrustes-aligned sequence (:func:`align_sequence`, clip mean)
    overlaid, thin and semi-transparent, with their mean shape on top (toolkit:
    ``Draw.save_plots_proc``, which wrote one PNG per frame). Shows how much the face moves
    once pose and scale are removed: the spread is the expression (mostly the mouth).

    Args:
        seq: (frames, 68, D) any units; NaN frames are skipped.
        out_png: destination (written atomically).
        title: default "N aligned frames + mean".

    Returns:
        ``Path(out_png)``.

    Raises:
        ReplicateError: bad shape or no frame with a face.
    """
    aligned = align_sequence(seq)
    good = aligned[valid_frames(aligned)]
    mean = good.mean(axis=0)
    fig, ax = _frame_axes(good)
    alpha = float(np.clip(3.0 / len(good), 0.05, 0.5))
    for f in good:
        draw_face(ax, f, color=(0.2, 0.4, 0.8, alpha), lw=0.6, ms=0.8)
    draw_face(ax, mean, color="black", lw=1.6, ms=2.5, mouth_color="#d62728")
    ax.plot([], [], "-", color="black", lw=1.6, label="mean shape (mouth in red)")
    ax.plot([], [], "-", color=(0.2, 0.4, 0.8, 0.6), lw=0.8, label=f"{len(good)} aligned frames")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title if title is not None else
                 f"{len(good)} Procrustes-aligned frames + mean ({UNITS.split(' (')[0]})",
                 fontsize=9)
    return save_figure(fig, _png_path(out_png), dpi=120)


def _png_path(path) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ReplicateError(f"{p}: the output must end in .png")
    return p


# -------------------------------------------------------------------------------- CLI


def _load(path, allow_nan: bool = True) -> np.ndarray:
    """A landmark .npy as float64 (frames, 68, D); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ReplicateError(f"{p}: no such file")
    try:
        a = load_npy(p)  # the one .npy reader (also accepts flattened (frames, 68*D))
    except InputError as e:
        raise ReplicateError(str(e)) from None
    return _check_seq(a.astype(np.float64), str(p), allow_nan=allow_nan)


def _save(path, a: np.ndarray) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ReplicateError(f"{path}: the output must end in .npy")
    return save_npy(path, a)  # float32, atomic


def _describe(a: np.ndarray, fps: float | None, units: str) -> str:
    bad = np.flatnonzero(~valid_frames(a))
    s = f"{a.shape} float32, {units}" + (f", {fps:g} fps" if fps else "")
    if len(bad):
        s += f"; {len(bad)} frame(s) without a face (NaN): {_ranges(bad)}"
    return s


def _video_arg(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ReplicateError(f"{p}: no such file")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_talkface.replicate",
        description="Replication toolkit: landmarks of real video, Procrustes alignment, "
                    "frame-rate resampling, closed-mouth frame, identity removal, mouth RMSE of a "
                    "prediction against a video, side-by-side comparison video, landmark plots. "
                    "Landmark files are .npy (frames, 68, 2|3); NaN rows = frames without a face.")
    sub = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    s = sub.add_parser("extract", help="dlib landmarks of every frame of a video -> .npy (pixels)")
    s.add_argument("video")
    s.add_argument("out", help="output .npy")
    s.add_argument("--fps", type=float, default=float(FPS),
                   help="resample to this frame rate (default 25)")
    s.add_argument("--native-fps", action="store_true", help="keep the video's own frame rate")

    s = sub.add_parser("align", help="Procrustes-align every frame (to the clip mean by default)")
    s.add_argument("input")
    s.add_argument("out")
    s.add_argument("--reference", default=None,
                   help="'first' (first frame with a face) or a (68, D) .npy (default: clip mean)")

    s = sub.add_parser("resample", help="change the frame rate of a landmark sequence")
    s.add_argument("input")
    s.add_argument("out")
    s.add_argument("--from-fps", type=float, required=True, dest="from_fps")
    s.add_argument("--to-fps", type=float, default=float(FPS), dest="to_fps")

    s = sub.add_parser("closed-mouth", help="print the closed-mouth reference frame index")
    s.add_argument("input")
    s.add_argument("--z", type=float, default=1.0, help="mouth-width |z-score| limit (1.0)")
    s.add_argument("--no-align", action="store_true",
                   help="measure in the file's coordinates (default: Procrustes-align first)")

    s = sub.add_parser("remove-identity", help="frames - closed-mouth frame + template")
    s.add_argument("input")
    s.add_argument("out")
    s.add_argument("--template", required=True, help="(68, D) template .npy")
    s.add_argument("--align", action="store_true",
                   help="Procrustes-align to the clip mean first (the toolkit's pipeline)")
    s.add_argument("--closed-mouth-index", type=int, default=None, dest="closed_mouth_index")
    s.add_argument("--z", type=float, default=1.0)

    s = sub.add_parser("rmse", help="mouth-only normalised RMSE of a prediction vs a video or "
                                    "true landmarks (JSON on stdout)")
    s.add_argument("pred")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--video", help="real video of the same speech (landmarks extracted)")
    g.add_argument("--true", help="true landmarks .npy")
    s.add_argument("--pred-fps", type=float, default=float(FPS), dest="pred_fps")
    s.add_argument("--true-fps", type=float, default=float(FPS), dest="true_fps",
                   help="frame rate of --true (default 25)")
    s.add_argument("--no-identity-removal", action="store_true", dest="no_identity_removal",
                   help="headline numbers after Procrustes only")
    s.add_argument("--json", default=None, help="also write the result to this .json")

    s = sub.add_parser("compare-video", help="video with its landmarks | prediction, with sound")
    s.add_argument("video")
    s.add_argument("pred")
    s.add_argument("out", help="output .mp4")
    s.add_argument("--style", choices=("lines", "painted"), default="lines")
    s.add_argument("--frame-numbers", action="store_true", dest="frame_numbers")
    s.add_argument("--size", type=int, default=320, help="panel height in pixels (320)")
    s.add_argument("--crop", choices=CROPS, default="full",
                   help="left panel: the full frame or a square around the face")

    s = sub.add_parser("plot-frame", help="one frame with its point numbers -> PNG")
    s.add_argument("input")
    s.add_argument("index", type=int)
    s.add_argument("out")
    s.add_argument("--no-numbers", action="store_true", dest="no_numbers")

    s = sub.add_parser("plot-sequence", help="all Procrustes-aligned frames + mean -> PNG")
    s.add_argument("input")
    s.add_argument("out")
    return p


def _run(args) -> None:
    cmd = args.command
    if cmd == "extract":
        v = video_landmarks(_video_arg(args.video))
        if args.native_fps:
            a, fps = v.points.astype(np.float32), v.fps
        else:
            a, fps = resample_sequence(v.points, v.fps, args.fps), args.fps
        out = _save(args.out, a)
        print(f"wrote {out}: {_describe(a, fps, 'pixels')} (video: {v.n_frames} frames at "
              f"{v.fps:g} fps, {v.width}x{v.height})")
    elif cmd == "align":
        a = _load(args.input)
        ref = args.reference
        if ref is not None and ref != "first":
            ref = _load(ref, allow_nan=False)
            if len(ref) != 1:
                raise ReplicateError(f"{args.reference}: the reference must hold one shape, got "
                                     f"{len(ref)} frames")
            ref = ref[0]
        out = _save(args.out, align_sequence(a, ref))
        print(f"wrote {out}: {_describe(a, None, UNITS)}")
    elif cmd == "resample":
        a = _load(args.input)
        r = resample_sequence(a, args.from_fps, args.to_fps)
        out = _save(args.out, r)
        print(f"wrote {out}: {_describe(r, args.to_fps, 'same units')} (from {len(a)} frames at "
              f"{args.from_fps:g} fps)")
    elif cmd == "closed-mouth":
        a = _load(args.input)
        i = closed_mouth(a, args.z, align=not args.no_align)
        print(i)
    elif cmd == "remove-identity":
        a = _load(args.input)
        t = _load(args.template, allow_nan=False)
        if len(t) != 1:
            raise ReplicateError(f"{args.template}: the template must hold one shape, got "
                                 f"{len(t)} frames")
        if args.align:
            a = align_sequence(a)
        c = closed_mouth(a, args.z) if args.closed_mouth_index is None else args.closed_mouth_index
        r = remove_identity_sequence(a, t[0], c)
        out = _save(args.out, r)
        print(f"wrote {out}: {_describe(r, None, 'template units')}; closed-mouth frame {c}")
    elif cmd == "rmse":
        pred = _load(args.pred)
        if args.video is not None:
            res = mouth_rmse_vs_video(pred, _video_arg(args.video), args.pred_fps,
                                      not args.no_identity_removal)
        else:
            res = mouth_rmse_vs_landmarks(pred, _load(args.true), args.pred_fps, args.true_fps,
                                          not args.no_identity_removal)
            res["true"] = str(args.true)
        res["pred"] = str(args.pred)
        from tf_talkface.data.manifest import json_safe

        text = json.dumps(json_safe(res), indent=2, allow_nan=False)  # NaN -> null (valid JSON)
        print(text)
        if args.json:
            path = Path(args.json)
            with atomic_output(path, ".tmp.json") as tmp:
                Path(tmp).write_text(text + "\n")
            print(f"wrote {path}", file=sys.stderr)
    elif cmd == "compare-video":
        video = _video_arg(args.video)
        pred = _load(args.pred)
        if args.size < 64:
            raise ReplicateError(f"--size must be at least 64 pixels, got {args.size}")
        out = comparison_video(video, pred, args.out, args.style, args.frame_numbers, args.size,
                               args.crop)
        print(f"wrote {out}: {len(pred)} frames at {FPS} fps with the sound of {video}")
    elif cmd == "plot-frame":
        a = _load(args.input)
        out = plot_frame(a, args.index, args.out, numbers=not args.no_numbers)
        print(f"wrote {out}")
    elif cmd == "plot-sequence":
        a = _load(args.input)
        out = plot_aligned_sequence(a, args.out)
        print(f"wrote {out}")
    else:  # pragma: no cover - argparse refuses unknown subcommands
        raise ReplicateError(f"unknown subcommand {cmd!r}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 on success, 1 on bad input (message on stderr naming the file and the
    problem), 2 on bad arguments (argparse's SystemExit)."""
    from tf_talkface.audio.io import AudioError
    from tf_talkface.face.landmarks import FaceError

    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except (ReplicateError, FaceError, AudioError) as e:
        print(f"replicate {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"replicate {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
