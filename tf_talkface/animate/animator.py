"""The talking photo: one photo + a landmark sequence -> frames of that photo speaking.

Training-free and CPU-only (docs/photo_animation.md, "classical recipe"):

1. once per photo (:class:`PhotoAnimator`): dlib's 68 points (:func:`~tf_talkface.animate.
   photo.load_photo`); an open mouth is **closed** first (:func:`close_mouth`: the lips are
   moved together and the photo warped once), so silence looks closed; the face mesh
   (:func:`~tf_talkface.animate.photo_warp.build_mesh`) and the mouth painter are prepared;
2. per frame: the predicted landmarks are transferred onto the photo's points
   (:class:`~tf_talkface.animate.motion.MotionTransfer`), smoothed over 3 frames
   (:class:`~tf_talkface.animate.motion.Smoother`), eyes blink
   (:class:`~tf_talkface.animate.motion.Blinker`), the head moves
   (:class:`~tf_talkface.animate.motion.HeadMotion`, one similarity on the face and the ring,
   border fixed), a fold-over guard pulls the local motion back if a triangle would flip, the
   photo is warped (:class:`~tf_talkface.animate.photo_warp.MeshWarper`, one ``cv2.remap``)
   and the mouth opening (inner-lip polygon 60-67) is painted (:class:`MouthPainter`: a dark
   cavity with teeth: the photo's own teeth when its mouth was open, else synthetic bands).

:meth:`PhotoAnimator.push` / :meth:`~PhotoAnimator.flush` take landmark frames as they arrive
(streaming: frames come out ``smooth`` frames later) and :meth:`~PhotoAnimator.frames` runs the
same code over a whole sequence lazily, so a stream equals offline rendering bit for bit and
memory does not grow with the length. :func:`animate_photo` is the library entry point and
:func:`write_talking_photo` writes the mp4 with the sound.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from tf_talkface.animate.motion import (
    DEFAULT_LIP_GAIN, Blinker, HeadMotion, MotionTransfer, Smoother, apply_blink)
from tf_talkface.animate.photo import Photo, load_photo
from tf_talkface.animate.photo_warp import FaceMesh, MeshWarper, build_mesh, face_frame
from tf_talkface.config import FPS
from tf_talkface.face.topology import N_POINTS

__all__ = ["AnimationSettings", "PhotoStream", "add_photo_arguments", "settings_from_args",
           "close_mouth", "lip_edge_inset", "non_lip_mask", "eye_white",
           "teeth_fraction", "EyePainter", "MouthPainter", "PhotoAnimator", "animate_photo",
           "write_talking_photo", "write_mp4", "mouth_opening"]

_INNER_PAIRS = ((61, 67), (62, 66), (63, 65))
ENCODER_PRESET = "veryfast"
"""libx264 preset of the talking-photo mp4s (1.8x ``medium``'s speed at 1080p here)."""
OPEN_MOUTH_RATIO = 0.08
"""A photo whose inner-lip gap exceeds this fraction of the mouth width is closed first."""


@dataclass(frozen=True)
class AnimationSettings:
    """Knobs of the talking photo.

    Attributes:
        lip_gain: mouth and jaw displacement multiplier (:data:`~tf_talkface.animate.motion.
            DEFAULT_LIP_GAIN`).
        head_motion: head motion amplitude, 0 = still (``--still``), 1 = default.
        blink: eye blinks on/off.
        smooth: look-ahead of the temporal smoother in frames (0 = none, 1 = 1-2-1 weights).
        seed: random seed of head motion and blinks (same seed, same video).
        close_mouth: close an open mouth in the photo first (so silence looks closed).
        teeth: ``"auto"`` (the photo's own teeth when its mouth is open, else synthetic),
            ``"photo"`` (same as auto), ``"synthetic"``.
    """

    lip_gain: float = DEFAULT_LIP_GAIN
    head_motion: float = 1.0
    blink: bool = True
    smooth: int = 1
    seed: int = 0
    close_mouth: bool = True
    teeth: str = "auto"

    def __post_init__(self):
        if self.teeth not in ("auto", "photo", "synthetic"):
            raise ValueError(f"teeth must be auto, photo or synthetic, got {self.teeth!r}")
        if not self.lip_gain >= 0 or not self.head_motion >= 0 or self.smooth < 0:
            raise ValueError(f"lip_gain, head_motion and smooth must be >= 0: {self}")


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap along the face's down axis, mean of the pairs 61/67, 62/66, 63/65, in the
    points' units: float64 (frames,) for (frames, 68, 2) or a float for (68, 2)."""
    p = np.asarray(points, np.float64)
    single = p.ndim == 2
    p = p[None] if single else p
    out = np.empty(len(p))
    for i, f in enumerate(p):
        down = face_frame(f)[2]
        out[i] = np.mean([np.dot(f[lo] - f[up], down) for up, lo in _INNER_PAIRS])
    return float(out[0]) if single else out


def close_mouth(points: np.ndarray, ratio: float = OPEN_MOUTH_RATIO) -> tuple[np.ndarray, bool]:
    """Landmarks of the same face with the lips closed.

    When the inner-lip gap exceeds ``ratio`` x the mouth width, each inner-lip pair meets 40% of
    the way down from the upper lip (the upper lip comes down a little, the lower lip up more,
    as when a smile closes over the teeth); the outer lips follow their inner points (corners
    half), the chin rises by half the lower lip's move, tapering along the jaw.

    Source: MakeItTalk's ``util/utils.py close_input_face_mouth`` moves the inner lips to their
    mean for its image-translation input; we also move the outer lips and the chin so the lips
    keep their thickness.

    Returns:
        ``(points float64 (68, 2), changed)``; ``changed`` False = already closed (a copy).
    """
    p = np.array(points, np.float64, copy=True)
    _, right, down, _ = face_frame(p)
    width = abs(float(np.dot(p[54] - p[48], right)))
    gaps = np.array([np.dot(p[lo] - p[up], down) for up, lo in _INNER_PAIRS])
    if gaps.max() <= ratio * width:
        return p, False
    g = np.clip(gaps, 0, None)
    up_move = 0.4 * g                       # down
    lo_move = 0.6 * g                       # up
    for (up, lo), u, l in zip(_INNER_PAIRS, up_move, lo_move):
        p[up] += u * down
        p[lo] -= l * down
    for idx, k, w in ((49, 0, 0.5), (50, 0, 1.0), (51, 1, 1.0), (52, 2, 1.0), (53, 2, 0.5)):
        p[idx] += w * up_move[k] * down
    for idx, k, w in ((59, 0, 0.5), (58, 0, 1.0), (57, 1, 1.0), (56, 2, 1.0), (55, 2, 0.5)):
        p[idx] -= w * lo_move[k] * down
    chin = 0.5 * float(lo_move.mean())
    for idx, w in ((5, 0.2), (6, 0.45), (7, 0.8), (8, 1.0), (9, 0.8), (10, 0.45), (11, 0.2)):
        p[idx] -= w * chin * down
    return p, True


def lip_edge_inset(points: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """The landmarks with the inner-lip points 61-63 / 65-67 moved ``fraction`` of the lip
    thickness towards their outer-lip points (50-52 / 58-56), at least 1 px.

    dlib's inner-lip contour on an open mouth often lies a little inside the teeth; used as the
    *source* of the closing warp, the inset points keep teeth pixels out of the lips (otherwise
    white specks remain on the closed lip line). float64 (68, 2)."""
    p = np.array(points, np.float64, copy=True)
    for inner, outer in ((61, 50), (62, 51), (63, 52), (65, 56), (66, 57), (67, 58)):
        d = p[outer] - p[inner]
        n = float(np.hypot(*d))
        if n > 1e-6:
            p[inner] += d * min(max(fraction, 1.0 / n), 0.5)
    return p


def non_lip_mask(image: np.ndarray, points: np.ndarray, threshold: float = 28.0) -> np.ndarray:
    """Teeth and mouth-interior pixels around an open mouth's inner-lip polygon that dlib's
    8 points miss (mostly at the curved mouth corners).

    Candidates: inside the outer-lip loop (48-59) and within 40% of the mean lip thickness of
    the inner-lip loop (60-67); kept when their colour is far from the lips' (CIELAB distance >
    ``threshold`` to the median colour of the lip ring between the two loops). uint8 (H, W)
    0/255."""
    import cv2

    p = np.asarray(points, np.float64)
    h, w = image.shape[:2]
    lo = np.floor(p[48:60].min(axis=0)).astype(int) - 2
    hi = np.ceil(p[48:60].max(axis=0)).astype(int) + 3
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], w), min(hi[1], h)
    out = np.zeros((h, w), np.uint8)
    if x1 <= x0 or y1 <= y0:
        return out
    q = np.round((p - (x0, y0)) * 16).astype(np.int32)
    outer = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(outer, [q[48:60]], 255, cv2.LINE_8, 4)
    inner = np.zeros_like(outer)
    cv2.fillPoly(inner, [q[60:68]], 255, cv2.LINE_8, 4)
    thick = np.mean([np.hypot(*(p[a] - p[b])) for a, b in
                     ((50, 61), (51, 62), (52, 63), (56, 65), (57, 66), (58, 67))])
    r = max(1, int(round(0.4 * thick)))
    near = cv2.dilate(inner, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lab = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB).astype(np.float32)
    ring = (outer > 0) & (cv2.dilate(inner, np.ones((3, 3), np.uint8)) == 0)
    if ring.sum() < 10:
        return out
    ref = np.median(lab[ring], axis=0)
    dist = np.sqrt(((lab - ref) ** 2).sum(axis=2))
    keep = (outer > 0) & (near > 0) & (inner == 0) & (dist > threshold)
    out[y0:y1, x0:x1] = np.where(keep, 255, 0).astype(np.uint8)
    return out


def eye_white(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The colour of white under the photo's lighting: median RGB of the brightest quarter of
    the pixels inside the two eye loops (the sclera); when the eyes are too small or closed
    (< 12 pixels), the 98th-percentile luminance pixel colours of the face. float64 (3,)."""
    import cv2

    p = np.asarray(points, np.float64)
    m = np.zeros(image.shape[:2], np.uint8)
    for eye in ([36, 37, 38, 39, 40, 41], [42, 43, 44, 45, 46, 47]):
        cv2.fillPoly(m, [np.round(p[eye] * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    px = image[m > 0].astype(np.float64)
    if len(px) < 12:
        x0, y0 = np.maximum(np.floor(p.min(axis=0)).astype(int), 0)
        x1, y1 = np.ceil(p.max(axis=0)).astype(int) + 1
        px = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
        lum = px @ np.array([0.299, 0.587, 0.114])
        sel = px[lum >= np.percentile(lum, 98)]
    else:
        lum = px @ np.array([0.299, 0.587, 0.114])
        sel = px[lum >= np.percentile(lum, 75)]
    white = np.median(sel, axis=0)
    # an eye white is at least fairly bright and neutral: pull towards grey, floor at 140
    grey = float(white.mean())
    white = 0.5 * white + 0.5 * grey
    return white * max(1.0, 140.0 / max(grey, 1.0))


def lip_colour(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Median RGB of the lips (between the outer loop 48-59 and the inner loop 60-67);
    float64 (3,)."""
    import cv2

    p = np.asarray(points, np.float64)
    m = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(p[48:60] * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    cv2.fillPoly(m, [np.round(p[60:68] * 16).astype(np.int32)], 0, cv2.LINE_8, 4)
    px = image[m > 0]
    return np.median(px, axis=0).astype(np.float64) if len(px) >= 5 else np.array([170.0, 90.0, 90.0])


def teeth_fraction(image: np.ndarray, points: np.ndarray) -> float:
    """Fraction of the pixels inside the inner-lip loop (60-67) that look like teeth: at
    least 12 L* units lighter than the lip ring and CIELAB-distant (> 28) from it. 0 for a
    closed mouth."""
    import cv2

    p = np.asarray(points, np.float64)
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(p[48:60].min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(p[48:60].max(axis=0)).astype(int) + 3, (w, h))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    q = np.round((p - (x0, y0)) * 16).astype(np.int32)
    outer = np.zeros((y1 - y0, x1 - x0), np.uint8)
    inner = np.zeros_like(outer)
    cv2.fillPoly(outer, [q[48:60]], 255, cv2.LINE_8, 4)
    cv2.fillPoly(inner, [q[60:68]], 255, cv2.LINE_8, 4)
    ring = (outer > 0) & (cv2.dilate(inner, np.ones((3, 3), np.uint8)) == 0)
    if ring.sum() < 10 or (inner > 0).sum() < 10:
        return 0.0
    lab = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = np.median(lab[ring], axis=0)
    px = lab[inner > 0]
    teeth = (px[:, 0] > ref[0] + 12 * 255 / 100) & (np.sqrt(((px - ref) ** 2).sum(axis=1)) > 28)
    return float(teeth.mean())


def _draw_seam(image: np.ndarray, points: np.ndarray) -> None:
    """Darken the line where closed lips meet (60-61-62-63-64): lip colour x 0.55, 60% opacity,
    ~1.2% of the eye distance wide, feathered; in place."""
    import cv2

    p = np.asarray(points, np.float64)
    _, _, _, dist = face_frame(p)
    line = p[[60, 61, 62, 63, 64]]
    pad = int(np.ceil(0.05 * dist)) + 3
    h, w = image.shape[:2]
    x0, y0 = max(int(line[:, 0].min()) - pad, 0), max(int(line[:, 1].min()) - pad, 0)
    x1, y1 = min(int(line[:, 0].max()) + pad + 1, w), min(int(line[:, 1].max()) + pad + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    m = np.zeros(roi.shape[:2], np.uint8)
    cv2.polylines(m, [np.round((line - (x0, y0)) * 16).astype(np.int32)], False, 255,
                  max(1, int(round(0.012 * dist))), cv2.LINE_AA, 4)
    a = cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), max(0.5, 0.006 * dist))
    a = (0.6 * a)[:, :, None]
    lips = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(p[48:60] - (x0, y0)).astype(np.int32)], 255)
    colour = np.median(roi[lips > 0], axis=0) if (lips > 0).any() else roi.reshape(-1, 3).mean(0)
    roi[:] = np.clip(roi * (1 - a) + 0.55 * colour * a + 0.5, 0, 255).astype(np.uint8)


def _polygon_mask(shape: tuple[int, int], polys: list[np.ndarray], sigma: float) -> np.ndarray:
    """Anti-aliased filled polygons (sub-pixel), Gaussian-feathered: float32 (h, w) in [0, 1]."""
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(p) * 16).astype(np.int32) for p in polys], 255,
                 cv2.LINE_AA, 4)
    m = m.astype(np.float32) * (1.0 / 255.0)
    if sigma > 0.05:
        m = cv2.GaussianBlur(m, (0, 0), sigma)
    return m


class MouthPainter:
    """Paints the mouth opening (inner-lip polygon 60-67) of a warped frame.

    Two textures:

    * ``photo``: the photo's own mouth interior, used when its mouth was open with teeth
      showing (inner-lip gap >= 12% of the mouth width and >= 20% of the opening teeth-like,
      :func:`teeth_fraction`). The interior of the photo's inner-lip polygon is mapped into the
      frame's opening in two bands: the upper half keeps its height under the upper lip, the
      lower half above the lower lip (teeth move with their lips, never stretched, squashed at
      most 3x: a smaller opening shows only the part nearest each lip), the gap between them,
      when the frame's opening is larger than the photo's, in the darkest tenth's colour of the
      photo's mouth; the teeth fade in as the lips part (fully at 8% of the mouth width).
    * ``synthetic``: smooth bands in the mouth's own axes: a cavity in the lips' own colour
      (0.8x near the lips, down to 0.35x deep inside and towards the corners; GRID frames'
      open mouths measure ~0.8x / 0.6x), an upper teeth band hanging from the upper lip (10% of
      the mouth width, at most 45% of the opening, tapering to the canines, shaded under the
      lip) and a dimmer lower band (5%, central half); the teeth colour is the photo's eye
      white (:func:`eye_white`: it follows the lighting, not the skin tone), and teeth fade in
      small mouths (35% visible at a 35-px mouth, as in GRID's video).

    Both are composited with a Gaussian-feathered mask (sigma ~ 0.8% of the eye distance)
    that covers the whole polygon (alpha = min(1, 2 x blurred mask)), faded in over the first
    4% of the mouth width of opening (lips just parting show the dark seam, not paint).
    Source: docs/photo_animation.md (mouth interior); learned systems (Wav2Lip, SadTalker,
    MakeItTalk) hallucinate the interior and only LiveSpeechPortraits uses real images of the
    person for teeth -- the ``photo`` texture is the classical version of that.

    Args:
        image: ``uint8 (H, W, 3)`` the (mouth-closed) base photo.
        points: float (68, 2) its rest points.
        source: optional ``(image, points)`` of the photo *before* closing (open mouth) for the
            ``photo`` texture.
    """

    def __init__(self, image: np.ndarray, points: np.ndarray,
                 source: tuple[np.ndarray, np.ndarray] | None = None):
        p = np.asarray(points, np.float64)
        _, self.right, self.down, self.eye_dist = face_frame(p)
        self.sigma = max(0.5, 0.008 * self.eye_dist)
        self.skin = self._skin(image, p)
        white = eye_white(image, p)
        skin_lum = float(self.skin @ np.array([0.299, 0.587, 0.114]))
        white_lum = float(white @ np.array([0.299, 0.587, 0.114]))
        if white_lum < 1.15 * skin_lum:      # eyes too small to see their whites: lift
            white = white * (1.15 * skin_lum / max(white_lum, 1.0))
        grey = float(white.mean())
        self.lips = lip_colour(image, p)
        self.cavity = 0.4 * self.lips
        self.teeth = np.clip((0.6 * white + 0.4 * grey) * np.array([0.98, 0.96, 0.9]), 0, 250)
        self.texture = None
        if source is not None and teeth_fraction(*source) >= 0.2:
            self._init_photo_texture(*source)

    @staticmethod
    def _skin(image: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Median RGB of the two cheeks (polygons 2-31-48-4 and 14-35-54-12)."""
        import cv2

        m = np.zeros(image.shape[:2], np.uint8)
        for poly in ([2, 31, 48, 4], [14, 35, 54, 12]):
            cv2.fillPoly(m, [np.round(p[poly]).astype(np.int32)], 255)
        px = image[m > 0]
        if len(px) < 10:
            return np.array([180.0, 140.0, 120.0])
        return np.median(px, axis=0).astype(np.float64)

    def _init_photo_texture(self, image: np.ndarray, points: np.ndarray) -> None:
        """Keep a patch of the open mouth of the original photo in the face's axes."""
        import cv2

        p = np.asarray(points, np.float64)
        gap = mouth_opening(p)
        width = abs(float(np.dot(p[64] - p[60], self.right)))
        if gap < 0.12 * width:
            return
        # patch in face-aligned coordinates: u along right, v along down, origin at p[60]
        poly = p[60:68]
        uv = (poly - p[60]) @ np.stack([self.right, self.down], axis=1)
        u0, v0 = uv.min(axis=0) - 2
        u1, v1 = uv.max(axis=0) + 2
        w, h = int(np.ceil(u1 - u0)), int(np.ceil(v1 - v0))
        a = np.stack([self.right, self.down], axis=1)  # columns: patch axes in image pixels
        org = p[60] + a @ np.array([u0, v0])
        fwd = np.hstack([a, org[:, None]])                # patch (u, v) -> image (x, y)
        patch = cv2.warpAffine(image, fwd, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT_101)
        inside = _polygon_mask((h, w), [uv - (u0, v0)], 0.0) > 0.5
        grey = patch.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        dark = patch[inside & (grey <= np.percentile(grey[inside], 10))] if inside.any() else None
        self.dark = np.median(dark, axis=0) if dark is not None and len(dark) else self.cavity
        self.texture = patch
        self.tex_uv = uv - (u0, v0)          # polygon 60..67 in patch coordinates

    def paint(self, frame: np.ndarray, points: np.ndarray) -> None:
        """Paint the opening of ``points`` (68, 2) into ``frame`` (uint8 (H, W, 3)) in place."""
        p = np.asarray(points, np.float64)
        gaps = np.array([np.dot(p[lo] - p[up], self.down) for up, lo in _INNER_PAIRS])
        if gaps.max() < 0.3:
            return
        poly = p[60:68]
        h, w = frame.shape[:2]
        pad = int(np.ceil(3 * self.sigma)) + 2
        x0 = max(int(np.floor(poly[:, 0].min())) - pad, 0)
        y0 = max(int(np.floor(poly[:, 1].min())) - pad, 0)
        x1 = min(int(np.ceil(poly[:, 0].max())) + pad + 1, w)
        y1 = min(int(np.ceil(poly[:, 1].max())) + pad + 1, h)
        if x1 <= x0 or y1 <= y0:
            return
        off = np.array([x0, y0], np.float64)
        q = p - off
        shape = (y1 - y0, x1 - x0)
        if self.texture is not None:
            layer = self._photo_layer(q, shape)
        else:
            layer = self._synthetic_layer(q, shape)
        # lips just parting show a dark line, not a painted mouth: fade in over the first 4% of
        # the mouth width (from a 0.5-px gap)
        width = abs(float(np.dot(q[64] - q[60], self.right)))
        fade = float(np.clip((gaps.max() - 0.5) / max(0.04 * width, 1.0), 0, 1))
        if fade <= 0:
            return
        alpha = fade * np.minimum(2.0 * _polygon_mask(shape, [q[60:68]], self.sigma), 1.0)[:, :, None]
        roi = frame[y0:y1, x0:x1]
        roi[:] = np.clip(roi * (1.0 - alpha) + layer * alpha + 0.5, 0, 255).astype(np.uint8)

    def _synthetic_layer(self, q: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Cavity + teeth as smooth bands in the mouth's own axes: u along the mouth (-1..1
        corner to corner), v down from the upper inner lip (pixels)."""
        hh, ww = shape
        r, d = self.right, self.down
        centre = (q[60] + q[64]) / 2
        half = max(abs(float(np.dot(q[64] - q[60], r))) / 2, 1.0)
        ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float32)
        rx, ry = xs - np.float32(centre[0]), ys - np.float32(centre[1])
        u = (rx * r[0] + ry * r[1]) / half
        v = rx * d[0] + ry * d[1]
        up, lo = q[[60, 61, 62, 63, 64]] - centre, q[[60, 67, 66, 65, 64]] - centre
        uu, vu = up @ r / half, up @ d
        ul, vl = lo @ r / half, lo @ d
        vtop = np.interp(u, uu[np.argsort(uu)], vu[np.argsort(uu)]).astype(np.float32)
        vbot = np.interp(u, ul[np.argsort(ul)], vl[np.argsort(ul)]).astype(np.float32)
        gap = np.maximum(vbot - vtop, 0.0)
        dt, db = v - vtop, vbot - v                       # depth below the upper / above the lower lip
        soft = np.float32(max(1.0, 1.2 * self.sigma))
        width = 2 * half
        # cavity: the inner lip surface / tongue near the lips (0.8 x the lip colour), darker
        # deeper in (0.35 x at 12% of the mouth width from both lips) and towards the corners;
        # measured on GRID frames: interior median ~0.8 x lips, darkest tenth ~0.6 x
        inside = np.clip(np.minimum(dt, db) / (0.12 * width), 0, 1)
        au = np.abs(u)
        cav = (0.8 - 0.45 * inside) * (1.0 - 0.3 * np.clip(au, 0, 1) ** 2)
        layer = cav[:, :, None] * self.lips.astype(np.float32)[None, None]
        # teeth are hard to see in a small mouth (GRID's 35-px mouths show none)
        vis = float(np.clip((width - 15.0) / 60.0, 0.35, 1.0))
        # lower teeth: a thin, dim band above the lower lip, central half only
        tl = np.sqrt(np.clip(1 - (u / 0.55) ** 2, 0, 1))
        hl = np.minimum(0.05 * width, 0.3 * gap) * tl
        al = vis * np.clip((hl - db) / soft + 0.5, 0, 1) * np.clip(db / soft + 0.5, 0, 1) * (hl > 0.3)
        col_l = (0.55 + 0.2 * tl)[:, :, None] * self.teeth.astype(np.float32)
        layer += al[:, :, None] * (col_l - layer)
        # upper teeth: hanging from the upper lip, at most 55% of the opening, tapering to the
        # canines; a shadow under the lip and a slightly darker biting edge
        tu = np.sqrt(np.clip(1 - (u / 0.8) ** 2, 0, 1))
        hu = np.minimum(0.1 * width, 0.45 * gap) * tu
        au_ = vis * np.clip((hu - dt) / soft + 0.5, 0, 1) * np.clip(dt / soft + 0.5, 0, 1) * (hu > 0.3)
        rel = np.clip(dt / np.maximum(hu, 1e-3), 0, 1)
        shade = (0.5 + 0.5 * tu) * (0.8 + 0.2 * np.clip(rel * 3, 0, 1)) * (1 - 0.12 * rel ** 2)
        col_u = shade[:, :, None] * self.teeth.astype(np.float32)
        layer += au_[:, :, None] * (col_u - layer)
        import cv2

        return cv2.GaussianBlur(layer, (0, 0), max(0.7, 1.2 * self.sigma))  # camera softness

    def _photo_layer(self, q: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Upper half of the photo's mouth attached to the upper lip, lower half to the lower
        lip, darkness between (see the class docstring)."""
        import cv2

        hh, ww = shape
        layer = np.empty((hh, ww, 3), np.float32)
        layer[:] = np.asarray(self.dark, np.float32)
        src = self.tex_uv
        up_src = src[[0, 1, 2, 3, 4]]
        lo_src = src[[0, 7, 6, 5, 4]]
        mid_src = (up_src + lo_src) / 2
        up_dst = q[[60, 61, 62, 63, 64]]
        lo_dst = q[[60, 67, 66, 65, 64]]
        # the frame's band heights: each lip carries its half of the photo's gap, no more than
        # half of the frame's own gap
        frame_gap = np.array([0.0] + [float(np.dot(q[lo] - q[up], self.down))
                                      for up, lo in _INNER_PAIRS] + [0.0])
        src_half = (mid_src - up_src)[:, 1]          # the patch's v axis is the face's down
        keep = np.minimum(src_half, np.clip(frame_gap, 0, None) / 2)
        # each band shows the part of the photo's mouth nearest its lip: squashed at most 3x
        # (a smaller opening cuts it instead of squashing it into stripes)
        down_uv = np.array([0.0, 1.0])
        src_keep = np.minimum(src_half, 3.0 * keep)
        up_cut = up_src + src_keep[:, None] * down_uv[None]
        lo_cut = lo_src - src_keep[:, None] * down_uv[None]
        up_mid = up_dst + keep[:, None] * self.down[None]
        lo_mid = lo_dst - keep[:, None] * self.down[None]
        for s_top, s_bot, d_top, d_bot in ((up_src, up_cut, up_dst, up_mid),
                                           (lo_src, lo_cut, lo_dst, lo_mid)):
            for i in range(4):
                quad_s = np.array([s_top[i], s_top[i + 1], s_bot[i + 1], s_bot[i]])
                quad_d = np.array([d_top[i], d_top[i + 1], d_bot[i + 1], d_bot[i]])
                for tri in ((0, 1, 2), (0, 2, 3)):
                    ts, td = quad_s[list(tri)], quad_d[list(tri)]
                    e1, e2 = td[1] - td[0], td[2] - td[0]
                    if abs(e1[0] * e2[1] - e1[1] * e2[0]) < 0.5:
                        continue
                    m_aff = cv2.getAffineTransform(td.astype(np.float32), ts.astype(np.float32))
                    warped = cv2.warpAffine(self.texture, m_aff, (ww, hh),
                                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                            borderMode=cv2.BORDER_REFLECT_101)
                    mk = _polygon_mask(shape, [td], 0.0)[:, :, None]
                    layer = layer * (1 - mk) + warped.astype(np.float32) * mk
        # the teeth come into view as the lips part (full at 8% of the mouth width)
        width = abs(float(np.dot(q[64] - q[60], self.right)))
        t = float(np.clip(frame_gap.max() / max(0.08 * width, 1.0), 0, 1))
        return t * layer + (1 - t) * np.asarray(self.dark, np.float32)


class EyePainter:
    """Covers the eyes as they close in a blink.

    The warp alone only squashes the eye: near full closure a line of sclera/iris pixels stays
    between the lids. From a closure of 0.45 on (fully at 0.9), each eye's loop (36-41 /
    42-47) plus a thin border is painted with the upper lid's skin colour (median of a band
    above the upper lid at rest) and a lash line along the moved upper lid (darkest tenth of the
    eye at rest, mixed with the lid colour), feathered.

    Source: docs/photo_animation.md ("a warp only squashes the eye; near full closure paint the
    lid with skin sampled just above it"); MakeItTalk's ``add_naive_eye`` and SadTalker move
    landmarks only and let their networks render the lid.

    Args:
        image: ``uint8 (H, W, 3)`` the base photo; points: float (68, 2) its rest points.
    """

    EYES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))

    def __init__(self, image: np.ndarray, points: np.ndarray):
        import cv2

        p = np.asarray(points, np.float64)
        _, _, self.down, dist = face_frame(p)
        self.sigma = max(0.5, 0.008 * dist)
        self.lid, self.lash, self.width = [], [], []
        h, w = image.shape[:2]
        for eye in self.EYES:
            upper = p[list(eye[:4])]
            band = np.vstack([upper, (upper - 0.12 * dist * self.down)[::-1]])
            m = np.zeros((h, w), np.uint8)
            cv2.fillPoly(m, [np.round(band * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
            px = image[m > 0].astype(np.float64)
            lid = np.median(px, axis=0) if len(px) >= 5 else np.array([170.0, 130.0, 110.0])
            m[:] = 0
            cv2.fillPoly(m, [np.round(p[list(eye)] * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
            px = image[m > 0].astype(np.float64)
            if len(px) >= 5:
                lum = px @ np.array([0.299, 0.587, 0.114])
                dark = np.median(px[lum <= np.percentile(lum, 10)], axis=0)
            else:
                dark = 0.35 * lid
            self.lid.append(lid)
            self.lash.append(0.5 * dark + 0.5 * 0.6 * lid)
            self.width.append(float(np.hypot(*(p[eye[3]] - p[eye[0]]))))

    def paint(self, frame: np.ndarray, points: np.ndarray, closure: float) -> None:
        """Paint the lids of ``points`` (68, 2) into ``frame`` in place for ``closure`` 0-1."""
        import cv2

        if closure <= 0.45:
            return
        a = float(np.clip((closure - 0.45) / 0.45, 0, 1))
        a = a * a * (3 - 2 * a)
        p = np.asarray(points, np.float64)
        h, w = frame.shape[:2]
        for k, eye in enumerate(self.EYES):
            poly = p[list(eye)]
            pad = int(np.ceil(3 * self.sigma + 0.1 * self.width[k])) + 2
            x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - pad, 0)
            x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + pad + 1, (w, h))
            if x1 <= x0 or y1 <= y0:
                continue
            q = np.round((poly - (x0, y0)) * 16).astype(np.int32)
            m = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(m, [q], 255, cv2.LINE_AA, 4)
            cv2.polylines(m, [q], True, 255, max(1, int(round(0.08 * self.width[k]))), cv2.LINE_AA, 4)
            lash = np.zeros_like(m)
            cv2.polylines(lash, [q[:4]], False, 255, max(1, int(round(0.035 * self.width[k]))),
                          cv2.LINE_AA, 4)
            m = cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), self.sigma)
            lash = cv2.GaussianBlur(lash.astype(np.float32) / 255.0, (0, 0), 0.7 * self.sigma)
            roi = frame[y0:y1, x0:x1].astype(np.float32)
            roi += (a * m)[:, :, None] * (self.lid[k].astype(np.float32) - roi)
            roi += (0.8 * a * lash)[:, :, None] * (self.lash[k].astype(np.float32) - roi)
            frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)


class PhotoAnimator:
    """One photo, animated frame by frame (see the module docstring).

    Args:
        photo: a :class:`~tf_talkface.animate.photo.Photo` (:func:`load_photo`).
        neutral: float (68, 2) the driving model's neutral / closed-mouth frame in its own
            coordinates (:func:`~tf_talkface.animate.motion.model_neutral`).
        settings: :class:`AnimationSettings`.

    Attributes:
        base: ``uint8 (H, W, 3)`` the photo with its mouth closed (the rest frame).
        rest: float64 (68, 2) the base's landmarks.
        mesh: the :class:`~tf_talkface.animate.photo_warp.FaceMesh`.
        mouth_closed: whether the photo's mouth had to be closed.

    Raises:
        tf_talkface.animate.photo_warp.MeshError: a face the mesh cannot fit.
    """

    def __init__(self, photo: Photo, neutral: np.ndarray,
                 settings: AnimationSettings | None = None):
        self.settings = settings or AnimationSettings()
        s = self.settings
        self.photo = photo
        img, pts = photo.image, np.asarray(photo.points, np.float64)
        mesh = build_mesh(pts, photo.size)
        self.mouth_closed = False
        base, rest = img, pts
        if s.close_mouth:
            closed, changed = close_mouth(pts)
            if changed:
                base = self._close(img, pts, closed, mesh)
                rest, self.mouth_closed = closed, True
        self.base, self.rest = base, rest
        self.mesh = FaceMesh(vertices=mesh.with_face(rest), triangles=mesh.triangles,
                             interior=mesh.interior, size=mesh.size)
        self.warper = MeshWarper(base, self.mesh)
        source = (img, lip_edge_inset(pts)) if self.mouth_closed and s.teeth != "synthetic" else None
        self.painter = MouthPainter(base, rest, source)
        self.eyes = EyePainter(base, rest)
        self.transfer = MotionTransfer(rest, neutral, s.lip_gain)
        _, _, self.down, self.eye_dist = face_frame(rest)
        self.smoother = Smoother(s.smooth)
        self.head = HeadMotion(s.head_motion, s.seed)
        self.blinker = Blinker(s.blink, s.seed)
        self.reset()

    @staticmethod
    def _close(img: np.ndarray, pts: np.ndarray, closed: np.ndarray, mesh: FaceMesh) -> np.ndarray:
        """The photo warped to the closed-mouth points; teeth/interior pixels left on the lips
        (:func:`non_lip_mask` carried through the same warp) are inpainted from the lips
        (``cv2.inpaint``, Telea, on the mouth region only)."""
        import cv2

        src = mesh.with_face(lip_edge_inset(pts))
        dst = mesh.with_face(closed)
        base = MeshWarper(img, mesh, src).warp(dst)
        m = non_lip_mask(img, pts)
        if m.any():
            m = MeshWarper(cv2.merge([m, m, m]), mesh, src).warp(dst)[:, :, 0]
            m = cv2.dilate((m > 60).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
            ys, xs = np.nonzero(m)
            if len(xs):
                pad = 6
                x0, y0 = max(xs.min() - pad, 0), max(ys.min() - pad, 0)
                x1, y1 = min(xs.max() + pad + 1, base.shape[1]), min(ys.max() + pad + 1, base.shape[0])
                base[y0:y1, x0:x1] = cv2.inpaint(np.ascontiguousarray(base[y0:y1, x0:x1]),
                                                 np.ascontiguousarray(m[y0:y1, x0:x1]), 3,
                                                 cv2.INPAINT_TELEA)
        _draw_seam(base, closed)
        return base

    def set_neutral(self, neutral: np.ndarray) -> None:
        """Drive with another model (or sequence) from now on: ``neutral`` float (68, 2) in its
        coordinates (see :class:`~tf_talkface.animate.motion.MotionTransfer`)."""
        self.transfer = MotionTransfer(self.rest, neutral, self.settings.lip_gain)

    def reset(self) -> None:
        """Ready for a new sequence (frame 0; same seed, same output)."""
        self.smoother.reset()
        self.head.reset()
        self.blinker.reset()
        self.t = 0
        self.last_points = self.rest.copy()

    # -- per frame -----------------------------------------------------------------------------
    def vertices(self, points: np.ndarray, pose: np.ndarray | None = None,
                 closure: float = 0.0) -> np.ndarray:
        """Mesh vertices for the photo points ``points`` (68, 2) with a blink ``closure`` and a
        head ``pose`` (:class:`~tf_talkface.animate.motion.HeadMotion`); if a triangle would
        fold, the local motion (points - rest) is halved until none does."""
        local = apply_blink(points, closure, self.down)
        if pose is None or not np.any(pose):
            tf = None
        else:
            tf = HeadMotion.transform(pose, self.rest)
        ring = self.mesh.vertices[self.mesh.ring]
        for lam in (1.0, 0.5, 0.25, 0.0):
            face = self.rest + lam * (local - self.rest)
            if tf is not None:
                v = self.mesh.with_face(face @ tf[:, :2].T + tf[:, 2], ring @ tf[:, :2].T + tf[:, 2])
            else:
                v = self.mesh.with_face(face)
            if not self.mesh.folded(v).any():
                return v
        return v

    def render(self, points: np.ndarray, pose: np.ndarray | None = None,
               closure: float = 0.0) -> np.ndarray:
        """One frame: the base photo warped to ``points`` (68, 2, photo pixels) with a head
        ``pose`` and a blink ``closure``, mouth painted. ``uint8 (H, W, 3)``."""
        v = self.vertices(points, pose, closure)
        frame = self.warper.warp(v)
        self.painter.paint(frame, v[:N_POINTS])
        self.eyes.paint(frame, v[:N_POINTS], closure)
        self.last_points = v[:N_POINTS]
        return frame

    def energy_proxy(self, pts: np.ndarray) -> np.ndarray:
        """Energy stand-in when no audio energy is given: float64 (k,) the mouth opening of the
        photo points ``pts`` (k, 68, 2) (0 at rest, 1 at 25% of the mouth width)."""
        width = abs(float(np.dot(self.rest[54] - self.rest[48], face_frame(self.rest)[1])))
        gap = np.array([mouth_opening(p) for p in pts]) - mouth_opening(self.rest)
        return np.clip(gap / (0.25 * width), 0.0, 1.0)

    def _render_smoothed(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for row in rows:
            pts = row[:-1].reshape(N_POINTS, 2)
            pose = self.head.step(float(row[-1]))
            out.append(self.render(pts, pose, self.blinker.closure(self.t)))
            self.t += 1
        return out

    def push(self, landmarks: np.ndarray, energy: np.ndarray | None = None) -> list[np.ndarray]:
        """Feed landmark frames as they arrive.

        Args:
            landmarks: float (k, 68, 2|3) model frames at 25 fps (k >= 0), in the model's
                coordinates (the same as ``neutral``).
            energy: float (k,) speech energy 0-1 of these frames
                (:class:`~tf_talkface.animate.motion.EnergyMeter`), or ``None`` (the mouth
                opening stands in).

        Returns:
            the frames now complete: ``uint8 (H, W, 3)`` RGB each; the ``smooth`` most recent
            frames come with later pushes or :meth:`flush`.
        """
        lm = np.asarray(landmarks, np.float64)
        if lm.ndim != 3 or lm.shape[1] != N_POINTS or lm.shape[2] not in (2, 3):
            raise ValueError(f"landmarks must be (frames, 68, 2|3), got {lm.shape}")
        if len(lm) == 0:
            return []
        pts = self.transfer(lm)
        if energy is None:
            e = self.energy_proxy(pts)
        else:
            e = np.asarray(energy, np.float64).reshape(-1)
            if len(e) != len(lm):
                raise ValueError(f"energy has {len(e)} frames, landmarks {len(lm)}")
        rows = np.concatenate([pts.reshape(len(pts), -1), e[:, None]], axis=1)
        return self._render_smoothed(self.smoother.push(rows))

    def flush(self) -> list[np.ndarray]:
        """End of the sequence: the remaining frames; then :meth:`reset`."""
        out = self._render_smoothed(self.smoother.flush())
        self.reset()
        return out

    def frames(self, landmarks: np.ndarray, energy: np.ndarray | None = None,
               chunk: int = 25) -> Iterator[np.ndarray]:
        """All frames of a whole sequence, lazily (push in chunks of ``chunk`` + flush): equal
        to any streaming of the same frames. Starts from :meth:`reset`."""
        self.reset()
        lm = np.asarray(landmarks)
        e = None if energy is None else np.asarray(energy, np.float64).reshape(-1)
        if e is not None and len(e) != len(lm):
            raise ValueError(f"energy has {len(e)} frames, landmarks {len(lm)}")
        for i in range(0, len(lm), chunk):
            yield from self.push(lm[i:i + chunk], None if e is None else e[i:i + chunk])
        yield from self.flush()


class PhotoStream:
    """Live talking photo: audio chunks in, photo frames out, as soon as they are determined.

    Drives a landmark streamer (any :class:`~tf_talkface.streamer.Streamer`: ``push(samples)``
    -> new landmark frames, ``flush()``, ``reset()``, ``sample_rate``), measures the speech
    energy of the same samples (:class:`~tf_talkface.animate.motion.EnergyMeter`, at the
    streamer's rate) and renders with a :class:`PhotoAnimator`. A landmark frame is emitted by
    the streamer only after its 40 ms of audio have arrived, so its energy is always known; the
    animator adds ``settings.smooth`` frames of delay (40 ms each).

    The frames equal offline rendering of the streamed landmarks
    (``animator.frames(landmarks, frame_energy(audio, streamer.sample_rate, len(landmarks)))``)
    exactly, for any chunking (tested).

    Args:
        streamer: the landmark streamer.
        animator: the :class:`PhotoAnimator` (its neutral must be the streamer's model's:
            :func:`~tf_talkface.animate.motion.model_neutral`).
    """

    def __init__(self, streamer, animator: PhotoAnimator):
        from tf_talkface.animate.motion import EnergyMeter

        self.streamer = streamer
        self.animator = animator
        self.meter = EnergyMeter(streamer.sample_rate)
        self.reset()

    @property
    def sample_rate(self) -> int:
        return int(self.streamer.sample_rate)

    def reset(self) -> None:
        """Ready for a new stream."""
        self.streamer.reset()
        self.meter.reset()
        self.animator.reset()
        self._energy: list[float] = []
        self._pending = np.zeros((0, N_POINTS, 2), np.float32)
        self.n_frames = 0

    def _render(self, final: bool) -> list[np.ndarray]:
        n = len(self._pending) if final else min(len(self._pending),
                                                 len(self._energy) - self.n_frames)
        if n <= 0:
            return []
        lm, self._pending = self._pending[:n], self._pending[n:]
        e = np.array(self._energy[self.n_frames:self.n_frames + n], np.float64)
        e = np.concatenate([e, np.zeros(n - len(e))])          # frames past the audio: silence
        self.n_frames += n
        return self.animator.push(lm, e)

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Feed mono float samples at :attr:`sample_rate`; return ``(landmarks float32 (k, 68,
        2), frames)``: the landmark frames the streamer emitted and the photo frames now
        complete (``uint8 (H, W, 3)`` RGB)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        self._energy.extend(self.meter.push(x).tolist())
        lm = np.asarray(self.streamer.push(x), np.float32)[..., :2]
        self._pending = np.concatenate([self._pending, lm])
        return lm, self._render(final=False)

    def flush(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """End of the stream: the remaining landmarks and frames. The streamer keeps its counts
        (``n_samples``) until :meth:`reset`."""
        self._energy.extend(self.meter.flush().tolist())
        lm = np.asarray(self.streamer.flush(), np.float32)[..., :2]
        self._pending = np.concatenate([self._pending, lm])
        frames = self._render(final=True) + self.animator.flush()
        self.meter.reset()
        self._energy, self.n_frames = [], 0
        return lm, frames


def _as_photo(photo, size: int | None = None) -> Photo:
    if isinstance(photo, Photo):
        return photo
    if isinstance(photo, (str, os.PathLike)):
        return load_photo(photo) if size is None else load_photo(photo, size=size)
    raise TypeError(f"photo must be a Photo or an image path, got {type(photo).__name__}")


def animate_photo(photo: Photo | str | os.PathLike, landmarks: np.ndarray,
                  neutral: np.ndarray | None = None, energy: np.ndarray | None = None,
                  settings: AnimationSettings | None = None) -> Iterator[np.ndarray]:
    """The talking photo as a library function: (photo, landmark sequence) -> frames.

    Args:
        photo: a :class:`~tf_talkface.animate.photo.Photo` or an image path
            (:func:`~tf_talkface.animate.photo.load_photo` with its defaults).
        landmarks: float (frames, 68, 2|3) at 25 fps from any landmark model, in its own
            coordinates.
        neutral: float (68, 2) the model's neutral frame (:func:`~tf_talkface.animate.motion.
            model_neutral`); ``None`` = the sequence's own closed-mouth frame
            (:func:`tf_talkface.face.normalize.closed_mouth_frame`).
        energy: float (frames,) speech energy 0-1 (:func:`~tf_talkface.animate.motion.
            frame_energy`) for the head motion; ``None`` = the mouth opening.
        settings: :class:`AnimationSettings`.

    Returns:
        iterator of ``uint8 (H, W, 3)`` RGB frames, one per landmark frame, at the photo's
        output resolution.

    Raises:
        tf_talkface.animate.photo.PhotoError: a bad photo (path given).
        ValueError: bad landmark shape.
    """
    from tf_talkface.face.normalize import closed_mouth_frame

    lm = np.asarray(landmarks, np.float32)
    if lm.ndim != 3 or lm.shape[1] != N_POINTS or lm.shape[2] not in (2, 3) or len(lm) == 0:
        raise ValueError(f"landmarks must be (frames, 68, 2|3) with frames >= 1, got {lm.shape}")
    if neutral is None:
        neutral = lm[closed_mouth_frame(lm[..., :2])][..., :2]
    anim = PhotoAnimator(_as_photo(photo), neutral, settings)
    return anim.frames(lm, energy)


def write_mp4(path: str | os.PathLike, frames: Iterable[np.ndarray], audio=None,
              sample_rate: int | None = None, n_frames: int | None = None,
              progress: bool = False) -> Path:
    """Encode RGB frames at 25 fps (+ optional sound) to an H.264/AAC mp4, atomically.

    The one place the talking photo reaches the project's mp4 writer
    (:func:`tf_talkface.viz.video_io.write_video`), with libx264's ``veryfast`` preset: at
    1080p the encoder, not the renderer, is the bottleneck (docs/performance.md).
    """
    from tf_talkface.viz.video_io import write_video

    return write_video(path, frames, fps=FPS, audio=audio, sample_rate=sample_rate,
                       n_frames=n_frames, progress=progress, preset=ENCODER_PRESET)


def write_talking_photo(photo: Photo | str | os.PathLike, landmarks: np.ndarray,
                        path: str | os.PathLike, audio=None, sample_rate: int | None = None,
                        neutral: np.ndarray | None = None, energy: np.ndarray | None = None,
                        settings: AnimationSettings | None = None,
                        progress: bool = False) -> Path:
    """:func:`animate_photo` encoded to an mp4 with the sound (frames are streamed to the
    encoder: memory does not grow with the length).

    Args:
        photo, landmarks, neutral, energy, settings: as :func:`animate_photo`.
        path: ``.mp4`` destination (written atomically).
        audio: a path or a float waveform (with ``sample_rate`` Hz), muxed from t = 0.

    Returns:
        ``Path(path)``.
    """
    frames = animate_photo(photo, landmarks, neutral, energy, settings)
    return write_mp4(path, frames, audio=audio, sample_rate=sample_rate,
                     n_frames=len(landmarks), progress=progress)


def add_photo_arguments(parser, size_help: str | None = None) -> None:
    """The talking-photo options shared by ``generate`` and ``stream``: ``--image``,
    ``--face-index``, ``--crop``, ``--still``, ``--head-motion``, ``--no-blink``,
    ``--lip-gain``, ``--seed`` (``--size`` is each CLI's own)."""
    from tf_talkface.animate.photo import DEFAULT_CROP

    g = parser.add_argument_group("talking photo")
    g.add_argument("--image", metavar="PHOTO",
                   help="animate this photo (jpg/png/...; 'example' = the bundled portrait) "
                        "instead of drawing the landmarks")
    g.add_argument("--face-index", type=int, default=0,
                   help="which face when the photo has several, 0 = the largest (default)")
    g.add_argument("--crop", type=float, nargs="?", const=DEFAULT_CROP, default=None,
                   metavar="FACTOR",
                   help=f"crop a square around the face first (FACTOR x the face's size, "
                        f"default {DEFAULT_CROP}); without it the photo's framing is kept")
    g.add_argument("--still", action="store_true", help="no head motion")
    g.add_argument("--head-motion", type=float, default=1.0, metavar="A",
                   help="head motion amplitude (default 1; 0 = --still)")
    g.add_argument("--no-blink", action="store_true", help="no eye blinks")
    g.add_argument("--lip-gain", type=float, default=DEFAULT_LIP_GAIN, metavar="G",
                   help=f"mouth/jaw motion multiplier (default {DEFAULT_LIP_GAIN:g})")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of head motion and blinks (same seed, same video; default 0)")


def settings_from_args(args) -> AnimationSettings:
    """:class:`AnimationSettings` from :func:`add_photo_arguments`' options.

    Raises:
        ValueError: a negative amplitude or gain (one line, for the CLI).
    """
    if args.head_motion < 0 or args.lip_gain < 0:
        raise ValueError("--head-motion and --lip-gain must be >= 0")
    if args.face_index < 0:
        raise ValueError("--face-index must be >= 0")
    if args.crop is not None and not args.crop > 0:
        raise ValueError("--crop FACTOR must be > 0")
    return AnimationSettings(lip_gain=args.lip_gain,
                             head_motion=0.0 if args.still else args.head_motion,
                             blink=not args.no_blink, seed=args.seed)
