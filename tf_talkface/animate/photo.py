"""Load one photo for animation: decode any common image safely, find the face, frame the output.

:func:`load_photo` is the one entry point: file -> :class:`Photo` (RGB pixels at the output
resolution + the chosen face's 68 dlib landmarks in those pixels). Every problem is a
:class:`PhotoError` whose one-line message names the file and the problem.

Input handling (each case tested in ``tests/test_photo.py``):

* **formats**: anything OpenCV decodes (JPEG, PNG, WebP, TIFF, BMP, ...) and, as a fallback,
  anything Pillow decodes; a file that is neither -> "not an image".
* **EXIF orientation** (phone photos stored sideways): applied, so the face is upright.
* **grayscale** -> RGB; **RGBA / gray+alpha** -> composited over white (transparent cut-outs
  keep a clean background); **16-bit** -> 8-bit (``round(v / 257)``); float images are clipped
  to [0, 1].
* **huge images**: more than :data:`MAX_PIXELS` -> error (decompression bombs); big JPEGs are
  decoded at 1/2, 1/4 or 1/8 size directly (libjpeg's DCT scaling) when that still exceeds the
  output size, which saves time and memory.
* **faces**: dlib's HOG frontal detector (the library's :mod:`tf_talkface.face.landmarks`
  models) on a copy downscaled to <= 1280 px with one upsampling step, so faces down to ~40 px
  at that scale are found; the 68-point predictor then runs on the full-resolution image. No
  face -> error; several -> the largest (``face_index`` picks the k-th largest); a face narrower
  than :data:`MIN_FACE_PX` -> error (there is not enough detail to animate).

Output framing: the photo's own framing and aspect ratio, downscaled (never upscaled) so that it
fits a 1080p frame in either orientation (shorter side <= ``size``, longer side <= 16/9 of it),
with even width and height (H.264 4:2:0 needs them). ``crop`` instead takes a square around the
face first. Source: SadTalker's ``--preprocess crop/full`` and MakeItTalk's centred 256x256 head
work on a face crop only; keeping the whole photo at up to 1080p is on purpose (the most frequent
user complaint about those tools is the low resolution, docs/photo_animation.md section 3).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tf_talkface.resources import check_input_file

__all__ = ["PhotoError", "Photo", "FaceFound", "MAX_PIXELS", "MIN_FACE_PX", "DEFAULT_SIZE",
           "DEFAULT_CROP", "read_image", "detect_faces", "output_size", "load_photo"]

MAX_PIXELS = 120_000_000
"""Images with more pixels (width x height, before any reduction) are refused."""
MIN_FACE_PX = 64
"""Smallest face accepted, as the width of its 68 landmarks (jaw to jaw) in input pixels."""
DEFAULT_SIZE = 1080
"""Default cap of the output's shorter side in pixels (the longer side is capped at 16/9 of it)."""
DEFAULT_CROP = 2.4
"""Side of the square ``crop`` around the face, in multiples of the landmarks' larger extent."""
DETECT_MAX_SIDE = 1280
"""The face detector runs on a copy of the photo downscaled to this longer side."""

_EXIF_ORIENTATION = 0x0112


class PhotoError(ValueError):
    """A photo that cannot be animated; the message names the file and the problem."""


@dataclass
class FaceFound:
    """One detected face: ``box`` (x0, y0, x1, y1) in pixels of the image searched, ``points``
    float64 (68, 2) its dlib landmarks there."""

    box: tuple[int, int, int, int]
    points: np.ndarray

    @property
    def width(self) -> float:
        """Width of the landmarks (jaw to jaw) in pixels."""
        return float(np.ptp(self.points[:, 0]))


@dataclass
class Photo:
    """A photo ready to animate.

    Attributes:
        image: ``uint8 (H, W, 3)`` RGB at the output resolution (W, H even).
        points: float64 (68, 2) the chosen face's landmarks in ``image`` pixels.
        path: the source file.
        source_size: ``(width, height)`` of the decoded (upright) source image in pixels.
        crop_box: ``(x0, y0, x1, y1)`` of the source region shown (the whole image without
            ``crop``), in source pixels.
        scale: output pixels per source pixel.
        n_faces: faces the detector found.
        face_index: which one was used (0 = the largest).
    """

    image: np.ndarray
    points: np.ndarray
    path: str = ""
    source_size: tuple[int, int] = (0, 0)
    crop_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    scale: float = 1.0
    n_faces: int = 1
    face_index: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


def _to_rgb8(a: np.ndarray, path) -> np.ndarray:
    """Any decoded OpenCV array (gray / BGR / BGRA / gray+alpha, 8/16-bit or float) -> RGB uint8."""
    import cv2

    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise PhotoError(f"{path}: unsupported pixel type {a.dtype}")
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise PhotoError(f"{path}: unsupported image layout {a.shape}")
    c = a.shape[2]
    if c == 1:
        return cv2.cvtColor(a[:, :, 0], cv2.COLOR_GRAY2RGB)
    if c in (2, 4):  # composite over white
        alpha = a[:, :, -1:].astype(np.float32) / 255.0
        col = a[:, :, :1] if c == 2 else a[:, :, :3]
        col = col.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        col = np.clip(col + 0.5, 0, 255).astype(np.uint8)
        if c == 2:
            return cv2.cvtColor(col[:, :, 0], cv2.COLOR_GRAY2RGB)
        a = col
    return cv2.cvtColor(a, cv2.COLOR_BGR2RGB)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an image array (rows = y)."""
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: np.swapaxes(x, 0, 1), 6: lambda x: np.rot90(x, -1),
           7: lambda x: np.rot90(x, 1)[::-1], 8: lambda x: np.rot90(x, 1)}
    f = ops.get(int(orientation))
    return np.ascontiguousarray(f(a)) if f else a


def read_image(path: str | os.PathLike, max_side_needed: int | None = None) -> np.ndarray:
    """Decode an image file to upright RGB uint8 (see the module docstring for the cases).

    Args:
        path: image file.
        max_side_needed: if given, a JPEG larger than twice this (shorter side) may be decoded
            at 1/2, 1/4 or 1/8 scale, never below this size.

    Returns:
        ``uint8 (H, W, 3)`` RGB, EXIF orientation applied.

    Raises:
        PhotoError: missing/empty file, not an image, more than :data:`MAX_PIXELS` pixels.
    """
    import cv2
    from PIL import Image, UnidentifiedImageError

    import warnings

    path = Path(path)
    check_input_file(path, PhotoError)
    orientation, fmt, size = 1, None, None
    try:
        with warnings.catch_warnings():   # our own limit below, with a clear message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size, fmt = im.size, im.format
                try:
                    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
                except Exception:  # noqa: BLE001 - broken EXIF: ignore it
                    orientation = 1
    except Image.DecompressionBombError as e:
        raise PhotoError(f"{path}: image too large ({e}); the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} MP") from None
    except UnidentifiedImageError:
        pass  # maybe OpenCV knows it
    except OSError as e:
        raise PhotoError(f"{path}: cannot read the image ({e})") from None
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise PhotoError(f"{path}: image too large ({size[0]}x{size[1]} = "
                         f"{size[0] * size[1] / 1e6:.0f} MP; the limit is {MAX_PIXELS / 1e6:.0f} MP)")
    data = np.fromfile(path, np.uint8)
    flags = cv2.IMREAD_UNCHANGED
    if fmt == "JPEG" and max_side_needed and size is not None:
        short = min(size)
        for k, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                        (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if short / k >= 2 * max_side_needed:
                flags = flag | cv2.IMREAD_IGNORE_ORIENTATION
                break
    a = cv2.imdecode(data, flags) if len(data) else None
    if a is None:
        try:
            with Image.open(path) as im:
                im.load()
                a = np.asarray(im.convert("RGBA" if "A" in im.getbands() else "RGB"))
            a = a[:, :, [2, 1, 0, 3]] if a.shape[2] == 4 else a[:, :, ::-1]
        except Exception:  # noqa: BLE001 - any decoder failure = not an image
            raise PhotoError(f"{path}: not an image (neither OpenCV nor Pillow can decode it)") from None
    if a.size == 0 or a.shape[0] < 2 or a.shape[1] < 2:
        raise PhotoError(f"{path}: empty image ({a.shape})")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise PhotoError(f"{path}: image too large ({a.shape[1]}x{a.shape[0]}; the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} MP)")
    return _orient(_to_rgb8(a, path), orientation)


def detect_faces(image: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> list[FaceFound]:
    """All frontal faces of an RGB image with their 68 landmarks, largest box first.

    dlib's HOG detector runs with one upsampling step on a grey copy downscaled to ``max_side``
    (``cv2.INTER_AREA``); the shape predictor runs on the full-resolution grey image. Source:
    :class:`tf_talkface.face.landmarks.LandmarkExtractor` does the same per video frame (there
    without upsampling, for speed on many frames).

    Returns:
        list of :class:`FaceFound` (empty when there is no face).
    """
    import cv2
    import dlib

    from tf_talkface.face.landmarks import dlib_models

    detector, predictor = dlib_models()
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    s = min(1.0, max_side / max(h, w))
    small = grey if s == 1.0 else cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))),
                                             interpolation=cv2.INTER_AREA)
    rects = detector(small, 1)
    faces = []
    for r in sorted(rects, key=lambda r: r.area(), reverse=True):
        box = dlib.rectangle(int(round(r.left() / s)), int(round(r.top() / s)),
                             int(round(r.right() / s)), int(round(r.bottom() / s)))
        pts = np.array([(q.x, q.y) for q in predictor(grey, box).parts()], np.float64)
        faces.append(FaceFound((box.left(), box.top(), box.right(), box.bottom()), pts))
    return faces


def output_size(width: int, height: int, size: int = DEFAULT_SIZE) -> tuple[int, int]:
    """The output ``(width, height)``: the input scaled down (never up) so that its shorter side
    is <= ``size`` and its longer side <= ``round(size * 16 / 9)``, then rounded to even numbers
    (>= 2). E.g. 910x1137 -> 910x1136, 1920x1080 -> 1920x1080, 4000x3000 -> 1440x1080,
    3024x4032 -> 1080x1440; with ``size=512``: 910x1137 -> 512x640."""
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    short, long_ = min(width, height), max(width, height)
    s = min(1.0, size / short, round(size * 16 / 9) / long_)
    w = max(2, int(round(width * s / 2)) * 2)
    h = max(2, int(round(height * s / 2)) * 2)
    return min(w, width - width % 2 or 2), min(h, height - height % 2 or 2)


def _crop_box(points: np.ndarray, width: int, height: int, factor: float) -> tuple[int, int, int, int]:
    """A square of ``factor`` x the landmarks' larger extent around the face (centre slightly
    above the landmarks' centre, to include the hair), shifted/shrunk to fit the image."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    side = factor * float(max(hi - lo))
    cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2 - 0.08 * side
    side = min(side, width, height)
    x0 = min(max(cx - side / 2, 0.0), width - side)
    y0 = min(max(cy - side / 2, 0.0), height - side)
    return int(round(x0)), int(round(y0)), int(round(x0 + side)), int(round(y0 + side))


def load_photo(path: str | os.PathLike, size: int = DEFAULT_SIZE, crop: float | None = None,
               face_index: int = 0, min_face: int = MIN_FACE_PX) -> Photo:
    """Read a photo, find its face and frame the output (see the module docstring).

    Args:
        path: image file.
        size: cap of the output's shorter side in pixels (default 1080; never upscales).
        crop: ``None`` keeps the photo's framing; a number crops a square of that many times
            the face's extent around the face first (:data:`DEFAULT_CROP` is a head-and-
            shoulders portrait).
        face_index: which face when there are several, 0 = the largest (by detector box).
        min_face: refuse faces narrower than this (landmark width, input pixels).

    Returns:
        :class:`Photo`.

    Raises:
        PhotoError: the file problems of :func:`read_image`, no face, ``face_index`` out of
            range, a face smaller than ``min_face``.
    """
    import cv2

    path = Path(path)
    if face_index < 0:
        raise PhotoError(f"{path}: face index must be >= 0, got {face_index}")
    if crop is not None and not crop > 0:
        raise PhotoError(f"{path}: crop factor must be > 0, got {crop}")
    img = read_image(path, max_side_needed=max(size, DETECT_MAX_SIDE // 2))
    h, w = img.shape[:2]
    faces = detect_faces(img)
    if not faces:
        raise PhotoError(f"{path}: no face found (dlib's frontal face detector needs a roughly "
                         f"frontal face of at least ~{min_face} px)")
    if face_index >= len(faces):
        raise PhotoError(f"{path}: face index {face_index} requested but only {len(faces)} "
                         f"face(s) found (0 = the largest)")
    face = faces[face_index]
    if face.width < min_face:
        raise PhotoError(f"{path}: the face is too small ({face.width:.0f} px wide; at least "
                         f"{min_face} px needed)")
    box = (0, 0, w, h) if crop is None else _crop_box(face.points, w, h, float(crop))
    x0, y0, x1, y1 = box
    region = img[y0:y1, x0:x1]
    ow, oh = output_size(x1 - x0, y1 - y0, size)
    sx, sy = ow / (x1 - x0), oh / (y1 - y0)
    if (ow, oh) != (x1 - x0, y1 - y0):
        region = cv2.resize(region, (ow, oh), interpolation=cv2.INTER_AREA)
    pts = (face.points - (x0, y0) + 0.5) * (sx, sy) - 0.5
    notes = []
    if len(faces) > 1:
        notes.append(f"{len(faces)} faces found; animating face {face_index} "
                     f"({'the largest' if face_index == 0 else 'by size'})")
    return Photo(image=np.ascontiguousarray(region), points=pts, path=str(path),
                 source_size=(w, h), crop_box=box, scale=float((sx + sy) / 2),
                 n_faces=len(faces), face_index=face_index, notes=notes)
