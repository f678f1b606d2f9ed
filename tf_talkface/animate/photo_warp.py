"""Piecewise-affine photo warping: a face mesh over one photo and a fast dense backward warp.

The talking photo (:mod:`tf_talkface.animate.animator`) moves a photo's 68 landmarks frame by
frame; this module turns each set of moved points into pixels:

* :func:`build_mesh` -- once per photo: the 68 dlib points, a **ring** of 16 points around the
  head (moves with the head), a fixed **outer ring** 1.75x as large (the head motion is absorbed
  between the rings; the background beyond stays put and is never computed) and **border
  anchors** on (or just outside) the image rectangle, triangulated once with
  ``scipy.spatial.Delaunay`` on the photo's points with the lips and eyes held *open*, so that a
  closed mouth never produces slivers. The triangle list is then fixed for the whole video.
* :class:`MeshWarper` -- per frame: a **backward dense map + one** ``cv2.remap``. The triangles
  whose corners moved are rasterised into a uint8 id image (``cv2.fillConvexPoly``, sub-pixel
  coordinates), their destination->source affines (solved for all triangles in one numpy call)
  are gathered per pixel with ``cv2.LUT`` and applied to a cached ``[x, y, 1]`` grid
  (``cv2.multiply`` + ``cv2.transform``), and ``cv2.remap`` samples the source photo (bilinear,
  ``BORDER_REFLECT_101``). Only the bounding box of the moving triangles is computed; the rest of
  the frame is a copy.

Source and differences:

* MakeItTalk's cartoon path (yzhou359/MakeItTalk ``facewarp``) triangulates 68 points plus
  boundary anchors once (``cv2.Subdiv2D`` on an open-mouth annotation) and warps each triangle on
  the GPU (OpenGL, Windows binary). We triangulate with ``scipy.spatial.Delaunay`` (indices, not
  coordinates), add a ring so the neck and hair move with the head, and warp on the CPU with one
  dense map (``docs/shared photo_animation.md`` measured 3-5x faster than the usual per-triangle
  ``cv2.warpAffine`` of bounding rectangles, learnopencv style; ``scripts/bench_photo.py`` keeps
  that renderer as the baseline and checks both agree).
* ``skimage.transform.PiecewiseAffineTransform`` does the same mapping but loops over simplices
  in Python and warps with ``skimage.transform.warp`` (~10x slower than OpenCV); not used.

Conventions: images are ``uint8 (H, W, 3)`` RGB (any 3-channel order works: the warp does not
look at colours); points are ``float (N, 2)`` pixel coordinates ``(x, y)`` with the origin at the
centre of the top-left pixel, x to the right, y down.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf_talkface.face.topology import INNER_LIP, JAW, LEFT_EYE, N_POINTS, RIGHT_EYE

__all__ = ["N_RING", "OUTER_SCALE", "REQUIRED_EDGES", "warm_up", "FaceMesh", "MeshError",
           "face_frame", "ring_points", "border_points", "build_mesh", "MeshWarper",
           "triangle_affines", "signed_areas"]

N_RING = 16
"""Points on the ring around the head (moves with the head)."""
OUTER_SCALE = 1.75
"""The fixed outer ring is the ring scaled by this about the eye centre."""
MAX_TRIANGLES = 255
"""The id image is uint8 and id 255 means "not moving" (identity map)."""
_SUBPIX = 4  # cv2 fixed-point bits for the rasteriser (1/16 px)


class MeshError(ValueError):
    """A face mesh cannot be built (degenerate points, too many triangles)."""


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The face's own axes from 68 points.

    Returns:
        ``(centre, right, down, eye_dist)``: ``centre`` float64 (2,) = mean of the 12 eye
        points (pixels); ``right`` (2,) unit vector from the subject's right outer eye corner
        (36) to the left one (45); ``down`` (2,) the unit normal to it pointing to the chin
        (y down in image terms); ``eye_dist`` = |p45 - p36| in pixels.

    Raises:
        MeshError: the two eye corners coincide.
    """
    p = np.asarray(points, np.float64)
    d = p[45] - p[36]
    dist = float(np.hypot(*d))
    if not dist > 1e-6:
        raise MeshError("the outer eye corners coincide: not a face")
    right = d / dist
    down = np.array([-right[1], right[0]])
    centre = p[36:48].mean(axis=0)
    if np.dot(p[8] - centre, down) < 0:  # mirrored/odd input: keep "down" towards the chin
        down = -down
    return centre, right, down, dist


def ring_points(points: np.ndarray, n: int = N_RING) -> np.ndarray:
    """``n`` points on a rounded box (superellipse, exponent 2.5) around the head.

    In the face frame of :func:`face_frame` (unit = eye distance D, origin = eye centre): half
    width 1.3 D (the jaw is ~0.85 D), top 1.5 D above the eye line (forehead and hair),
    bottom 0.45 D below the chin. Starts at the top, goes clockwise on screen.

    Returns:
        float64 (n, 2) pixel coordinates (may lie outside the image).
    """
    c, r, d, dist = face_frame(points)
    p = np.asarray(points, np.float64)
    chin = max(float(np.dot(p[JAW] - c, d).max()), 0.8 * dist)
    a, top, bottom = 1.3 * dist, 1.5 * dist, chin + 0.45 * dist
    theta = -np.pi / 2 + 2 * np.pi * np.arange(n) / n
    cs, sn = np.cos(theta), np.sin(theta)
    e = 2.0 / 2.5
    x = a * np.sign(cs) * np.abs(cs) ** e
    y = np.where(sn < 0, top, bottom) * np.sign(sn) * np.abs(sn) ** e
    return c[None] + x[:, None] * r[None] + y[:, None] * d[None]


def border_points(width: int, height: int, extra: np.ndarray | None = None,
                  per_side: int = 3) -> np.ndarray:
    """Fixed anchors: the corners and ``per_side`` points on each side of a rectangle that holds
    the image (pixel centres 0..W-1, 0..H-1, with a 1-px margin) and every point of ``extra``
    (with a margin of 5% of the image size when they stick out).

    Returns:
        float64 (4 + 4 * per_side, 2).
    """
    x0, y0, x1, y1 = -1.0, -1.0, float(width), float(height)
    if extra is not None and len(extra):
        e = np.asarray(extra, np.float64)
        m = 0.05 * max(width, height)
        lo, hi = e.min(axis=0), e.max(axis=0)
        x0 = min(x0, lo[0] - m) if lo[0] < x0 + 1 else x0
        y0 = min(y0, lo[1] - m) if lo[1] < y0 + 1 else y0
        x1 = max(x1, hi[0] + m) if hi[0] > x1 - 1 else x1
        y1 = max(y1, hi[1] + m) if hi[1] > y1 - 1 else y1
    t = np.arange(1, per_side + 1) / (per_side + 1)
    pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    pts += [(x0 + (x1 - x0) * s, y0) for s in t] + [(x0 + (x1 - x0) * s, y1) for s in t]
    pts += [(x0, y0 + (y1 - y0) * s) for s in t] + [(x1, y0 + (y1 - y0) * s) for s in t]
    return np.array(pts, np.float64)


def signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle (positive = clockwise on screen, i.e.
    counter-clockwise in x-right/y-up terms flipped by the y-down image axis). float64 (T,)."""
    v = np.asarray(vertices, np.float64)[triangles]
    a, b = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def _spread(p: np.ndarray, pairs, down: np.ndarray, want: float) -> None:
    """Move each (upper, lower) pair apart along ``down`` until its gap is >= ``want`` px."""
    for up, lo in pairs:
        extra = want - float(np.dot(p[lo] - p[up], down))
        if extra > 0:
            p[up] -= down * extra / 2
            p[lo] += down * extra / 2


def _opened(points: np.ndarray) -> np.ndarray:
    """The points with the mouth and eyes held open (for triangulation only).

    The mouth opens as a jaw drop: the lower inner lip (65-67), the lower outer lip (55-59)
    and the chin (5-11, tapering) move down along the face's axis until the inner-lip gap is
    >= 30% of the mouth width; the inner mouth corners 60 / 64 are kept >= 6% of the width
    inside the outer ones 48 / 54; the eyelids are spread to >= 25% of the eye width."""
    p = np.array(points, np.float64, copy=True)
    _, right, down, _ = face_frame(p)
    width = abs(float(np.dot(p[54] - p[48], right)))
    extra = np.array([max(0.0, 0.3 * width - float(np.dot(p[lo] - p[up], down)))
                      for up, lo in ((61, 67), (62, 66), (63, 65))])
    for idx, k, w in ((67, 0, 1), (66, 1, 1), (65, 2, 1), (58, 0, 1), (57, 1, 1), (56, 2, 1),
                      (59, 0, 0.5), (55, 2, 0.5)):
        p[idx] += w * extra[k] * down
    for idx, w in ((5, 0.3), (6, 0.6), (7, 0.9), (8, 1.0), (9, 0.9), (10, 0.6), (11, 0.3)):
        p[idx] += w * extra.max() * down
    for inner, outer, sign in ((60, 48, 1.0), (64, 54, -1.0)):
        inside = sign * float(np.dot(p[inner] - p[outer], right))
        if inside < 0.06 * width:
            p[inner] += sign * right * (0.06 * width - inside)
    for eye in (RIGHT_EYE, LEFT_EYE):
        ew = float(np.hypot(*(p[eye[3]] - p[eye[0]])))
        _spread(p, ((eye[1], eye[5]), (eye[2], eye[4])), down, 0.25 * ew)
    return p


REQUIRED_EDGES: tuple[tuple[int, int], ...] = tuple(
    [(60 + i, 60 + (i + 1) % 8) for i in range(8)]
    + [(48 + i, 48 + (i + 1) % 12) for i in range(12)]
    + [(36 + i, 36 + (i + 1) % 6) for i in range(6)]
    + [(42 + i, 42 + (i + 1) % 6) for i in range(6)])
"""Edges every face mesh has: the inner and outer lip loops and the two eye loops, so that the
mouth opening and the eyes are unions of whole triangles."""


def _cross(a, b, c) -> float:
    return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _segments_cross(p1, p2, q1, q2) -> bool:
    """Proper crossing of the open segments p1-p2 and q1-q2."""
    return (_cross(p1, p2, q1) * _cross(p1, p2, q2) < 0) and (_cross(q1, q2, p1) * _cross(q1, q2, p2) < 0)


def _insert_edge(tris: list[list[int]], pts: np.ndarray, a: int, b: int) -> bool:
    """Make ``a``-``b`` an edge of the triangulation by flipping the edges it crosses
    (Sloan's edge insertion; each flip needs a convex quadrilateral). True on success."""
    for _ in range(64):
        if any(a in t and b in t for t in tris):
            return True
        flipped = False
        for i, t in enumerate(tris):
            for k in range(3):
                c, d = t[k], t[(k + 1) % 3]
                if a in (c, d) or b in (c, d) or not _segments_cross(pts[a], pts[b], pts[c], pts[d]):
                    continue
                j = next((j for j, u in enumerate(tris) if j != i and c in u and d in u), None)
                if j is None:
                    continue
                e = next(v for v in t if v not in (c, d))
                f = next(v for v in tris[j] if v not in (c, d))
                # the quadrilateral c-f-d-e must be convex for the flip c-d -> e-f
                if not _segments_cross(pts[e], pts[f], pts[c], pts[d]):
                    continue
                tris[i], tris[j] = [e, c, f], [e, f, d]
                flipped = True
                break
            if flipped:
                break
        if not flipped:
            return False
    return any(a in t and b in t for t in tris)


@dataclass
class FaceMesh:
    """A triangulated photo: landmarks + ring + border anchors.

    Attributes:
        vertices: float64 (V, 2) rest positions in pixels: rows 0-67 the face's 68 landmarks,
            then :data:`N_RING` ring points (they move with the head), :data:`N_RING` points of
            the fixed outer ring (the ring scaled by :data:`OUTER_SCALE`: head motion is absorbed
            between the two rings and the background beyond stays still, so only the outer
            ring's box is ever warped), then the border anchors.
        triangles: int32 (T, 3) vertex indices, T <= 254, every triangle oriented so that
            :func:`signed_areas` is positive on the open-mouth/open-eye shape used to
            triangulate.
        interior: bool (T,) triangles inside the inner-lip loop (60-67) or an eye loop
            (36-41, 42-47): they may collapse to zero area (closed mouth, blink) and are not
            checked for fold-overs.
        size: ``(width, height)`` of the image in pixels.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    interior: np.ndarray
    size: tuple[int, int]

    @property
    def n_vertices(self) -> int:
        return int(len(self.vertices))

    @property
    def ring(self) -> slice:
        """Rows of :attr:`vertices` that are ring points."""
        return slice(N_POINTS, N_POINTS + N_RING)

    @property
    def outer(self) -> slice:
        """Rows of :attr:`vertices` on the fixed outer ring."""
        return slice(N_POINTS + N_RING, N_POINTS + 2 * N_RING)

    @property
    def border(self) -> slice:
        """Rows of :attr:`vertices` that are border anchors (never move)."""
        return slice(N_POINTS + 2 * N_RING, self.n_vertices)

    def with_face(self, points: np.ndarray, ring: np.ndarray | None = None) -> np.ndarray:
        """Vertices with rows 0-67 replaced by ``points`` (68, 2) and, if given, the ring by
        ``ring`` (16, 2); float64 (V, 2)."""
        v = self.vertices.copy()
        v[:N_POINTS] = points
        if ring is not None:
            v[self.ring] = ring
        return v

    def folded(self, vertices: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """Bool (T,): non-interior triangles whose signed area is <= ``tol`` (px^2, doubled)
        at ``vertices`` -- folded over or collapsed."""
        return (signed_areas(vertices, self.triangles) <= tol) & ~self.interior


def build_mesh(points: np.ndarray, size: tuple[int, int]) -> FaceMesh:
    """Triangulate a photo's face once (see the module docstring).

    Args:
        points: float (68, 2) the photo's landmarks in pixels (mouth open or closed).
        size: ``(width, height)`` of the photo in pixels.

    Returns:
        :class:`FaceMesh` whose rest vertices hold ``points`` unchanged.

    Raises:
        MeshError: degenerate points (coinciding eye corners), or a triangulation in which a
            triangle is folded at the rest points (a face so distorted that the open-mouth
            topology does not fit it).
    """
    from scipy.spatial import Delaunay

    p = np.asarray(points, np.float64)
    if p.shape != (N_POINTS, 2) or not np.all(np.isfinite(p)):
        raise MeshError(f"need finite (68, 2) landmarks, got shape {p.shape}")
    w, h = int(size[0]), int(size[1])
    ring = ring_points(p)
    centre = face_frame(p)[0]
    outer = centre + OUTER_SCALE * (ring - centre)
    border = border_points(w, h, np.vstack([p, ring, outer]))
    tri_shape = np.vstack([_opened(p), ring, outer, border])
    tri_list = Delaunay(tri_shape).simplices.tolist()
    for a, b in REQUIRED_EDGES:
        if not _insert_edge(tri_list, tri_shape, a, b):
            raise MeshError(f"cannot make the landmark edge {a}-{b} part of the face mesh")
    tris = np.array(tri_list, np.int32)
    if len(tris) > MAX_TRIANGLES - 1:
        raise MeshError(f"{len(tris)} triangles; at most {MAX_TRIANGLES - 1} supported")
    neg = signed_areas(tri_shape, tris) < 0
    tris[neg] = tris[neg][:, [0, 2, 1]]
    groups = [set(INNER_LIP.tolist()), set(RIGHT_EYE.tolist()), set(LEFT_EYE.tolist())]
    interior = np.array([any(set(t.tolist()) <= g for g in groups) for t in tris])
    mesh = FaceMesh(vertices=np.vstack([p, ring, outer, border]), triangles=tris, interior=interior,
                    size=(w, h))
    bad = mesh.folded(mesh.vertices, tol=-1e-6)
    if bad.any():
        raise MeshError(f"{int(bad.sum())} triangle(s) of the face mesh are folded at the "
                        "photo's own landmarks (an unusual face shape or pose)")
    return mesh


def triangle_affines(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The affine maps taking each destination triangle onto its source triangle, all at once.

    Args:
        src, dst: float (V, 2) vertex positions in the source photo / the destination frame.
        triangles: int (T, 3).

    Returns:
        float64 (T, 2, 3) ``M`` with ``M @ [x_dst, y_dst, 1] = [x_src, y_src]`` at the three
        corners. A destination triangle of (near) zero area covers no pixel centre; it gets the
        least-squares (pseudo-inverse) solution so no NaN appears.
    """
    s = np.asarray(src, np.float64)[triangles]
    d = np.asarray(dst, np.float64)[triangles]
    dm = np.stack([d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]], axis=2)   # (T, 2, 2) columns
    sm = np.stack([s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]], axis=2)
    det = dm[:, 0, 0] * dm[:, 1, 1] - dm[:, 0, 1] * dm[:, 1, 0]
    ok = np.abs(det) > 1e-9
    inv = np.empty_like(dm)
    dd = np.where(ok, det, 1.0)
    inv[:, 0, 0], inv[:, 1, 1] = dm[:, 1, 1] / dd, dm[:, 0, 0] / dd
    inv[:, 0, 1], inv[:, 1, 0] = -dm[:, 0, 1] / dd, -dm[:, 1, 0] / dd
    if not ok.all():
        inv[~ok] = np.linalg.pinv(dm[~ok])
    lin = sm @ inv
    t = s[:, 0] - np.einsum("tij,tj->ti", lin, d[:, 0])
    return np.concatenate([lin, t[:, :, None]], axis=2)


_KERNEL: list = []


def _numba_kernel():
    """The scanline rasteriser compiled with numba (a dependency of librosa, so present), or
    ``None`` when numba is unavailable (the ``cv2.LUT`` path is used then). Compiled once per
    process (``cache=True`` keeps the machine code between runs when the package folder is
    writable)."""
    if _KERNEL:
        return _KERNEL[0]
    try:
        import numba
    except Exception:  # noqa: BLE001 - no numba: fall back to the cv2 path
        _KERNEL.append(None)
        return None

    @numba.njit(cache=True, nogil=True)
    def raster_maps(mx, my, x0, y0, corners, aff, idx):  # pragma: no cover - compiled
        h, w = mx.shape
        for j in range(h):                       # identity outside the moving triangles
            for i in range(w):
                mx[j, i] = x0 + i
                my[j, i] = y0 + j
        for k in idx:
            ax, ay = corners[k, 0, 0] - x0, corners[k, 0, 1] - y0
            bx, by = corners[k, 1, 0] - x0, corners[k, 1, 1] - y0
            cx, cy = corners[k, 2, 0] - x0, corners[k, 2, 1] - y0
            area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
            if area < 0:
                bx, by, cx, cy = cx, cy, bx, by
            ymin = max(int(np.ceil(min(ay, by, cy) - 1e-9)), 0)
            ymax = min(int(np.floor(max(ay, by, cy) + 1e-9)), h - 1)
            a00, a01, a02 = aff[k, 0, 0], aff[k, 0, 1], aff[k, 0, 2] + aff[k, 0, 0] * x0 + aff[k, 0, 1] * y0
            a10, a11, a12 = aff[k, 1, 0], aff[k, 1, 1], aff[k, 1, 2] + aff[k, 1, 0] * x0 + aff[k, 1, 1] * y0
            for j in range(ymin, ymax + 1):
                lo, hi = -1e30, 1e30
                ok = True
                for e in range(3):
                    if e == 0:
                        px, py, qx, qy = ax, ay, bx, by
                    elif e == 1:
                        px, py, qx, qy = bx, by, cx, cy
                    else:
                        px, py, qx, qy = cx, cy, ax, ay
                    # inside: (qx - px) * (j - py) - (qy - py) * (x - px) >= 0  (clockwise on
                    # screen with y down = positive area)
                    bcoef = -(qy - py)
                    acoef = (qx - px) * (j - py) + (qy - py) * px
                    if bcoef > 1e-12:
                        lo = max(lo, -acoef / bcoef - 1e-9)
                    elif bcoef < -1e-12:
                        hi = min(hi, -acoef / bcoef + 1e-9)
                    elif acoef < -1e-9:
                        ok = False
                if not ok:
                    continue
                i0 = max(int(np.ceil(lo)), 0)
                i1 = min(int(np.floor(hi)), w - 1)
                fy = float(j)
                for i in range(i0, i1 + 1):
                    fx = float(i)
                    mx[j, i] = a00 * fx + a01 * fy + a02
                    my[j, i] = a10 * fx + a11 * fy + a12

    _KERNEL.append(raster_maps)
    return raster_maps


def warm_up() -> None:
    """Compile the numba rasteriser now (a few seconds the first time, ~1 s from numba's cache),
    e.g. in a thread while a model loads; harmless without numba."""
    k = _numba_kernel()
    if k is not None:
        m = np.zeros((2, 2), np.float32)
        k(m, m.copy(), 0.0, 0.0, np.zeros((1, 3, 2)), np.zeros((1, 2, 3)), np.zeros(0, np.int64))


class MeshWarper:
    """Warp one source image by moving the vertices of a :class:`FaceMesh` (see the module
    docstring for the method).

    Args:
        image: ``uint8 (H, W, 3)`` the source photo (``(W, H)`` must equal ``mesh.size``).
        mesh: the triangulation; ``mesh.vertices`` are the source positions.
        src_vertices: optional float (V, 2) source positions instead of ``mesh.vertices``.

    Cost (``scripts/bench_photo.py``, 2-core CPU): a few ms per frame at 512 px; memory: one
    cached ``float32 (H, W, 3)`` coordinate grid (25 MB at 1920x1080) plus per-frame maps of the
    moving region.
    """

    coarse_step = 4
    """Grid step (pixels) of the maps in the ring band; 1 = exact everywhere."""
    use_numba = True
    """Build the exact maps with the numba scanline rasteriser (one pass writing both maps)
    instead of ``cv2.fillConvexPoly`` ids + ``cv2.LUT`` + ``cv2.multiply`` + ``cv2.transform``
    (six passes); same maps to float32 round-off."""

    def __init__(self, image: np.ndarray, mesh: FaceMesh, src_vertices: np.ndarray | None = None):
        import cv2

        img = np.ascontiguousarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
        if (img.shape[1], img.shape[0]) != tuple(mesh.size):
            raise ValueError(f"image size {img.shape[1]}x{img.shape[0]} differs from the mesh's "
                             f"{mesh.size[0]}x{mesh.size[1]}")
        self.image = img
        self.mesh = mesh
        self.src = np.asarray(mesh.vertices if src_vertices is None else src_vertices, np.float64)
        h, w = img.shape[:2]
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._grid = cv2.merge([xs, ys, np.ones_like(xs)])
        self._ones = np.ones((1, 3), np.float32)
        self._tabx = np.zeros((256, 1, 3), np.float32)
        self._taby = np.zeros((256, 1, 3), np.float32)
        self._tabx[:, 0, 0] = 1.0   # id 255 (and unused ids): identity
        self._taby[:, 0, 1] = 1.0
        self._cv2 = cv2

    def moving(self, dst: np.ndarray, tol: float = 1e-3) -> np.ndarray:
        """Bool (T,): triangles with a corner that is not at its source position."""
        moved = np.abs(np.asarray(dst, np.float64) - self.src).max(axis=1) > tol
        return moved[self.mesh.triangles].any(axis=1)

    def _exact(self, dst: np.ndarray, aff: np.ndarray, idx: np.ndarray,
               box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel maps over ``box`` (x0, y0, x1, y1): the triangles ``idx`` rasterised into a
        uint8 id image, their affines gathered with ``cv2.LUT`` and applied to the cached
        ``[x, y, 1]`` grid."""
        cv2 = self._cv2
        x0, y0, x1, y1 = box
        tris = self.mesh.triangles
        kernel = _numba_kernel() if self.use_numba else None
        if kernel is not None:
            mx = np.empty((y1 - y0, x1 - x0), np.float32)
            my = np.empty_like(mx)
            kernel(mx, my, float(x0), float(y0), dst[tris], aff.astype(np.float64),
                   np.asarray(idx, np.int64))
            return mx, my
        self._tabx[idx, 0, :] = aff[idx, 0, :]
        self._taby[idx, 0, :] = aff[idx, 1, :]
        ids = np.full((y1 - y0, x1 - x0), 255, np.uint8)
        fx = np.round((dst - (x0, y0)) * (1 << _SUBPIX)).astype(np.int32)
        for i in idx:
            cv2.fillConvexPoly(ids, fx[tris[i]], int(i), cv2.LINE_8, _SUBPIX)
        ids3 = cv2.merge([ids, ids, ids])
        grid = self._grid[y0:y1, x0:x1]
        mx = cv2.transform(cv2.multiply(cv2.LUT(ids3, self._tabx), grid), self._ones)
        my = cv2.transform(cv2.multiply(cv2.LUT(ids3, self._taby), grid), self._ones)
        self._tabx[idx] = (1.0, 0.0, 0.0)
        self._taby[idx] = (0.0, 1.0, 0.0)
        return mx, my

    def _coarse(self, dst: np.ndarray, aff: np.ndarray, idx: np.ndarray,
                box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Maps over ``box`` from a grid of step :attr:`coarse_step`: the displacement (map
        minus identity) is evaluated exactly at the grid points (pixel centres of a
        ``cv2.resize`` by that factor) and upsampled bilinearly. Exact inside each triangle
        away from its edges; near an edge between two triangles the error is at most
        step/4 x the jump of the map's gradient (< 0.2 px for the ring-band triangles)."""
        cv2 = self._cv2
        g = self.coarse_step
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        cw, ch = -(-w // g), -(-h // g)
        tris = self.mesh.triangles
        self._tabx[idx, 0, :] = aff[idx, 0, :]
        self._taby[idx, 0, :] = aff[idx, 1, :]
        ids = np.full((ch, cw), 255, np.uint8)
        fx = np.round(((dst - (x0, y0) + 0.5) / g - 0.5) * (1 << _SUBPIX)).astype(np.int32)
        for i in idx:
            cv2.fillConvexPoly(ids, fx[tris[i]], int(i), cv2.LINE_8, _SUBPIX)
        xs = (x0 + (np.arange(cw, dtype=np.float32) + 0.5) * g - 0.5)
        ys = (y0 + (np.arange(ch, dtype=np.float32) + 0.5) * g - 0.5)
        gx, gy = np.meshgrid(xs, ys)
        grid = cv2.merge([gx, gy, np.ones_like(gx)])
        ids3 = cv2.merge([ids, ids, ids])
        dx = cv2.transform(cv2.multiply(cv2.LUT(ids3, self._tabx), grid), self._ones) - gx
        dy = cv2.transform(cv2.multiply(cv2.LUT(ids3, self._taby), grid), self._ones) - gy
        self._tabx[idx] = (1.0, 0.0, 0.0)
        self._taby[idx] = (0.0, 1.0, 0.0)
        full = (cw * g, ch * g)
        mx = cv2.resize(dx, full, interpolation=cv2.INTER_LINEAR)[:h, :w]
        my = cv2.resize(dy, full, interpolation=cv2.INTER_LINEAR)[:h, :w]
        mx += self._grid[y0:y1, x0:x1, 0]
        my += self._grid[y0:y1, x0:x1, 1]
        return mx, my

    def maps(self, dst: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """The backward map of the moving region.

        Exact per pixel (numba rasteriser). Without numba (the ``cv2`` path): exact in a box
        around the 68 landmarks (plus 25% of the eye distance) and, in the rest of the moving
        region (the band of big ring triangles), from a coarse grid (:meth:`_coarse`), when
        that box is less than 60% of the region.

        Args:
            dst: float (V, 2) destination vertex positions.

        Returns:
            ``((x0, y0, x1, y1), map_x, map_y)``: the region (pixel box, end exclusive) and two
            float32 (y1-y0, x1-x0) arrays of source coordinates; ``None`` when nothing moves.
        """
        dst = np.asarray(dst, np.float64)
        move = self.moving(dst)
        if not move.any():
            return None
        h, w = self.image.shape[:2]
        tris = self.mesh.triangles
        corners = dst[tris[move]].reshape(-1, 2)
        x0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
        y0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
        x1 = min(int(np.ceil(corners[:, 0].max())) + 2, w)
        y1 = min(int(np.ceil(corners[:, 1].max())) + 2, h)
        if x1 <= x0 or y1 <= y0:
            return None
        aff = triangle_affines(self.src, dst, tris).astype(np.float32)
        # a (near) zero-area destination triangle covers no pixel centre, but the rasteriser
        # would still draw its outline with a meaningless map: leave those pixels to the
        # neighbours (fillConvexPoly includes the shared edges)
        idx = np.flatnonzero(move & (np.abs(signed_areas(dst, tris)) > 0.5))
        face = np.vstack([dst[:N_POINTS], self.src[:N_POINTS]])
        m = 0.25 * float(np.hypot(*(self.src[45] - self.src[36])))
        fx0 = max(int(np.floor(face[:, 0].min() - m)), x0)
        fy0 = max(int(np.floor(face[:, 1].min() - m)), y0)
        fx1 = min(int(np.ceil(face[:, 0].max() + m)) + 1, x1)
        fy1 = min(int(np.ceil(face[:, 1].max() + m)) + 1, y1)
        area = (x1 - x0) * (y1 - y0)
        if (self.coarse_step <= 1 or fx1 <= fx0 or fy1 <= fy0
                or (self.use_numba and _numba_kernel() is not None)
                or (fx1 - fx0) * (fy1 - fy0) > 0.6 * area):
            mx, my = self._exact(dst, aff, idx, (x0, y0, x1, y1))
            return (x0, y0, x1, y1), mx, my
        mx, my = self._coarse(dst, aff, idx, (x0, y0, x1, y1))
        # the exact box only needs the triangles that reach into it
        tb = dst[tris[idx]]
        near = ((tb[:, :, 0].max(axis=1) >= fx0) & (tb[:, :, 0].min(axis=1) < fx1)
                & (tb[:, :, 1].max(axis=1) >= fy0) & (tb[:, :, 1].min(axis=1) < fy1))
        ex, ey = self._exact(dst, aff, idx[near], (fx0, fy0, fx1, fy1))
        mx[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = ex
        my[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = ey
        return (x0, y0, x1, y1), mx, my

    def warp(self, dst: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The source image with the mesh vertices moved to ``dst``.

        Args:
            dst: float (V, 2) destination vertex positions (border anchors normally unchanged).
            out: optional ``uint8 (H, W, 3)`` buffer to write into (else a new array).

        Returns:
            ``uint8 (H, W, 3)``: outside the moving region a copy of the source image.
        """
        cv2 = self._cv2
        if out is None:
            out = self.image.copy()
        else:
            np.copyto(out, self.image)
        m = self.maps(dst)
        if m is None:
            return out
        (x0, y0, x1, y1), mx, my = m
        out[y0:y1, x0:x1] = cv2.remap(self.image, mx, my, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT_101)
        return out
