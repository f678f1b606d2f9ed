"""A photo speaking through ATVGnet: align the face, generate the crop frames, paste them back.

The pipeline of ATVGnet's demo (``shared/docs/atvgnet_davs.md`` A8) around the exported
SavedModel (:mod:`tf_talkface.atvgnet_serving`):

1. the photo's face (dlib, :func:`tf_talkface.animate.photo.load_photo`) is aligned to the
   training crop template by the same similarity as ``prepare --recipe atvgnet``
   (:func:`tf_talkface.face.align.crop_transforms` on points 27-44), cut to 128 px, and its
   landmarks normalised the same way;
2. the SavedModel turns speech + crop + landmarks into crop frames (AT-net -> VG-net);
3. every generated crop is resized to 128 px and pasted back into the whole photo with the
   inverse transform and a feathered face mask (:func:`tf_talkface.animate.compose.paste_back`,
   the talking photo's compositing). The original demo shows only the 128-px crop.

``panels`` builds the original's figure as a video: landmarks | attention | colour map | result
(crop pixels, side by side).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CROP = 128
"""Side of the aligned crop in pixels (the training crops of ``prepare --recipe atvgnet``)."""


@dataclass
class ATVGnetResult:
    """What one generation produced.

    Attributes:
        frames: uint8 (T, H, W, 3) the photo speaking, at the photo's size.
        crops: uint8 (T, 128, 128, 3) the generated crops (resized to 128 px).
        landmarks: float32 (T, 68, 2) AT-net's landmarks in photo pixels.
        landmarks_norm: float32 (T, 136) the same, normalised x5 (the model's units).
        attention: float32 (T, S, S) α. color: uint8 (T, S, S, 3) the colour map.
        tform: float64 (2, 3) photo -> crop transform.
    """

    frames: np.ndarray
    crops: np.ndarray
    landmarks: np.ndarray
    landmarks_norm: np.ndarray
    attention: np.ndarray
    color: np.ndarray
    tform: np.ndarray
    example_crop: np.ndarray


def align_photo(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(tform (2, 3), crop uint8 (128, 128, 3), landmarks float32 (136,))``: the photo's face
    aligned as the training crops (one frame: no temporal smoothing).

    Raises:
        ValueError: non-finite or degenerate landmarks.
    """
    from tf_talkface.face.align import (crop_to_normalised, crop_transforms, transform_points,
                                        warp_crop)

    tform = crop_transforms(np.asarray(points, np.float64)[None], smooth=1)[0]
    crop = warp_crop(np.asarray(image), tform, CROP)
    lmk = crop_to_normalised(transform_points(points, tform))
    return tform, crop, lmk


def _resize(img: np.ndarray, size: int, interp=None) -> np.ndarray:
    import cv2

    if img.shape[0] == size and img.shape[1] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC if interp is None else interp)


def speak(model, waveform: np.ndarray, image: np.ndarray, points: np.ndarray) -> ATVGnetResult:
    """Make the photo ``image`` (uint8 (H, W, 3) RGB, its face's dlib ``points`` (68, 2)) say
    ``waveform`` (float32 (samples,) at 16 kHz) with an
    :class:`tf_talkface.atvgnet_serving.ATVGnetModel`.

    Raises:
        ValueError: degenerate landmarks. ModelError: empty or non-finite audio.
    """
    from tf_talkface.animate.compose import crop_mask, paste_back
    from tf_talkface.face.align import invert_transform, normalised_to_crop, transform_points

    tform, crop, lmk = align_photo(image, points)
    out = model.generate(waveform, crop, lmk)
    crops = np.stack([_resize(f, CROP) for f in out["frames"]])
    lm_crop = normalised_to_crop(out["landmarks"])
    lm_photo = transform_points(lm_crop.reshape(-1, 2), invert_transform(tform)).reshape(-1, 68, 2)
    frames = np.empty((len(crops),) + image.shape, np.uint8)
    for i, c in enumerate(crops):
        mask = crop_mask((CROP, CROP), lm_crop[i])
        frames[i] = paste_back(image, c, tform, mask=mask)
    return ATVGnetResult(frames=frames, crops=crops, landmarks=lm_photo.astype(np.float32),
                         landmarks_norm=out["landmarks"].astype(np.float32),
                         attention=out["attention"][..., 0], color=out["color"], tform=tform,
                         example_crop=crop)


def panels(result: ATVGnetResult, size: int = 256) -> np.ndarray:
    """The original's figure per frame: landmarks (drawn on the example crop) | attention α
    (grey) | colour map | result crop, each ``size`` px. uint8 (T, size, 4 size, 3)."""
    import cv2

    from tf_talkface.face.align import normalised_to_crop
    from tf_talkface.face.topology import EDGES

    n = len(result.crops)
    out = np.empty((n, size, 4 * size, 3), np.uint8)
    base = _resize(result.example_crop, size)
    s = size / CROP
    for i in range(n):
        lm = base.copy() // 2 + 64
        pts = normalised_to_crop(result.landmarks_norm[i]) * s
        for a, b in EDGES:
            cv2.line(lm, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[b]).astype(int)),
                     (255, 255, 255), 1, cv2.LINE_AA)
        att = (np.clip(result.attention[i], 0, 1) * 255).astype(np.uint8)
        att = np.repeat(_resize(att, size, cv2.INTER_NEAREST)[..., None], 3, axis=2)
        col = _resize(result.color[i], size, cv2.INTER_NEAREST)
        res = _resize(result.crops[i], size)
        out[i] = np.concatenate([lm, att, col, res], axis=1)
    return out
