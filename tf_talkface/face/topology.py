"""Topology of dlib's / iBUG-300W's 68-point face landmark layout.

Indices are 0-based, as in dlib. "Right"/"left" are the *subject's* sides: ``RIGHT_EYE``
(36-41) appears on the left of the image for a frontal face, so eye corner 36 has a smaller x
than eye corner 45.

Every index group is a read-only ``np.ndarray`` of ``int64`` so it can index a ``(..., 68, D)``
array directly: ``points[:, MOUTH]``.

``EDGES`` are the line segments of the original Eskimez et al. 2018 drawing code (closed outer
and inner lip loops, nose bridge + nostrils, brow and jaw chains, closed eye loops).
"""
from __future__ import annotations

import numpy as np

N_POINTS = 68


def _idx(start: int, stop: int) -> np.ndarray:
    a = np.arange(start, stop, dtype=np.int64)
    a.flags.writeable = False
    return a


JAW = _idx(0, 17)
"""Jaw line, 0-16 (17 points)."""
RIGHT_BROW = _idx(17, 22)
"""Subject's right eyebrow, 17-21."""
LEFT_BROW = _idx(22, 27)
"""Subject's left eyebrow, 22-26."""
NOSE = _idx(27, 36)
"""Nose bridge 27-30 and lower nose 31-35."""
NOSE_BRIDGE = _idx(27, 31)
"""Nose bridge, 27-30 (30 = nose tip)."""
NOSTRILS = _idx(31, 36)
"""Lower nose, 31-35."""
RIGHT_EYE = _idx(36, 42)
"""Subject's right eye, 36-41 (36 = outer corner)."""
LEFT_EYE = _idx(42, 48)
"""Subject's left eye, 42-47 (45 = outer corner)."""
OUTER_LIP = _idx(48, 60)
"""Outer lip contour, 48-59 (48 and 54 = mouth corners)."""
INNER_LIP = _idx(60, 68)
"""Inner lip contour, 60-67 (60 and 64 = inner mouth corners)."""
MOUTH = _idx(48, 68)
"""Whole mouth, 48-67 (20 points; the mouth metrics of the field use these)."""

EYE_CORNERS = (36, 45)
"""Outer eye corners (subject's right, subject's left) used for eye alignment."""
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = EYE_CORNERS

GROUPS: dict[str, np.ndarray] = {
    "jaw": JAW,
    "right_brow": RIGHT_BROW,
    "left_brow": LEFT_BROW,
    "nose": NOSE,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "outer_lip": OUTER_LIP,
    "inner_lip": INNER_LIP,
}
"""The eight disjoint parts that together cover all 68 points (``MOUTH`` = outer + inner lip)."""


def _chain(idx: np.ndarray) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:])]


def _loop(idx: np.ndarray) -> list[tuple[int, int]]:
    return _chain(idx) + [(int(idx[-1]), int(idx[0]))]


EDGES: list[tuple[int, int]] = (
    _loop(OUTER_LIP)
    + _loop(INNER_LIP)
    + [(27, 28), (28, 29), (29, 30), (30, 31), (30, 35)]
    + _chain(NOSTRILS)
    + [(27, 31), (27, 35)]
    + _chain(RIGHT_BROW)
    + _chain(LEFT_BROW)
    + _loop(RIGHT_EYE)
    + _loop(LEFT_EYE)
    + _chain(JAW)
)
"""Drawing edges ``(i, j)`` of the original: outer lip loop 48..59 closed, inner lip loop
60..67 closed, nose 27-28-29-30, 30-31, 30-35, 31-32-33-34-35, 27-31, 27-35, brow chains
17..21 and 22..26, closed eye loops 36..41 and 42..47, jaw chain 0..16 (67 edges)."""

__all__ = [
    "N_POINTS", "JAW", "RIGHT_BROW", "LEFT_BROW", "NOSE", "NOSE_BRIDGE", "NOSTRILS",
    "RIGHT_EYE", "LEFT_EYE", "OUTER_LIP", "INNER_LIP", "MOUTH", "EYE_CORNERS",
    "RIGHT_EYE_OUTER", "LEFT_EYE_OUTER", "GROUPS", "EDGES",
]
