"""``prepare --recipe atvgnet``: what is specific to ATVGnet's pixel data (Chen et al. 2019).

Per clip (:func:`clip_arrays`, a plain top-level function, picklable for process pools and
Beam): every 25-fps frame's aligned 128 x 128 face crop (:mod:`tf_talkface.face.align`:
similarity on dlib points 27-44 to :data:`~tf_talkface.face.align.ATVGNET_TEMPLATE`, smoothed
over 5 frames) as JPEG, the crop-from-frame matrix (so a generated crop can be pasted back),
the frame's 68 points mapped into the crop by the same transform (no second dlib pass) and
normalised by the template's fixed centre and norm x5, and the MFCC of the utterance padded with
1920 zeros on each side (:func:`tf_talkface.audio.mfcc.mfcc_padded`). Landmark detection, audio
decoding, the work files and the skip reasons are :mod:`tf_talkface.prepare`'s, shared with the
other recipes.

Over all clips (:func:`normalise_atvgnet`): a 6-component PCA of the normalised landmarks fitted
on the training split only (:class:`~tf_talkface.face.pca.PCABasis`, ``basis.json``), its
coefficients per frame, the manifest's ``normalisation`` section and ``schema``.

Record layout: ``docs/records.md``; tf.data sampling: :mod:`tf_talkface.data.pixels`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tf_talkface.audio.mfcc import (N_MFCC, PAD_SAMPLES, ROWS_PER_FRAME, WINDOW_ROWS,
                                    mfcc_padded)
from tf_talkface.config import FPS, RecipeConfig
from tf_talkface.data.build import PrepareError
from tf_talkface.face.align import (ATVGNET_FIT_POINTS, ATVGNET_SIZE, ATVGNET_TEMPLATE,
                                    crop_to_normalised, crop_transforms, normaliser,
                                    transform_points, warp_crop)
from tf_talkface.face.pca import PCABasis, fit_pca

__all__ = ["template_for", "frames_at_fps", "clip_arrays", "record_fields", "normalise_atvgnet"]


def template_for(image_size: int) -> np.ndarray:
    """ATVGnet's template scaled to an ``image_size``-px crop (pixel centres kept:
    ``(x + 0.5) * s - 0.5``); float64 (68, 2)."""
    s = image_size / ATVGNET_SIZE
    return (ATVGNET_TEMPLATE + 0.5) * s - 0.5


def frames_at_fps(n_src: int, src_fps: float) -> np.ndarray:
    """Source frame index of every 25-fps frame: the nearest source frame in time.

    The count is :func:`tf_talkface.face.landmarks.resample_fps`'s (``round(n * 25 / fps)``, or
    ``n`` when the rates agree within 1e-3), so the images pair with the other recipes' frames.
    Whole frames are picked (not interpolated) so a crop and its landmarks show the same instant.

    Returns:
        int64 (frames,).
    """
    if abs(src_fps - FPS) <= 1e-3:
        return np.arange(n_src, dtype=np.int64)
    n = max(1, int(round(n_src * FPS / src_fps)))
    return np.clip(np.round(np.arange(n) * src_fps / FPS), 0, n_src - 1).astype(np.int64)


def clip_arrays(video_path: str, rcfg: RecipeConfig, points: np.ndarray, fps: float,
                audio: np.ndarray) -> dict[str, np.ndarray]:
    """All per-clip arrays of the atvgnet recipe (pure: reads the video, writes nothing).

    Args:
        video_path: the video the landmarks were detected on.
        rcfg: the recipe (``rcfg.atvgnet``: image size, JPEG quality, smoothing, scale).
        points: float (T_src, 68, 2) dlib landmarks of every source frame at ``fps``.
        fps: the video's frame rate.
        audio: float32 (frames * hop,) mono at ``rcfg.atvgnet.sample_rate`` (16 kHz), already
            trimmed/padded to the 25-fps frame count (``prepare`` does it).

    Returns:
        ``landmarks_raw`` (T, 68, 2) float32 frame pixels of the frames used; ``landmarks``
        (T, 136) float32 normalised; ``crop_matrices`` (T, 2, 3) float32 crop-from-frame;
        ``jpeg_data`` uint8 (all JPEGs concatenated) and ``jpeg_offsets`` int64 (T + 1,);
        ``mfcc`` (4 T + 23, 12) float32.

    Raises:
        ValueError: (including :class:`~tf_talkface.face.landmarks.FaceError`) the video cannot
            be decoded, has fewer frames than landmarks, or audio and frames disagree; the
            message is the clip's skip reason.
    """
    import cv2

    from tf_talkface.face.landmarks import iter_frames

    a = rcfg.atvgnet
    pts_src = np.asarray(points, np.float64)
    src = frames_at_fps(len(pts_src), fps)
    n = len(src)
    if len(audio) != n * a.hop:
        raise ValueError(f"audio has {len(audio)} samples, {n} frames need {n * a.hop}")
    pts = pts_src[src]
    template = template_for(a.image_size)
    tforms = crop_transforms(pts, template, ATVGNET_FIT_POINTS, a.smooth_frames)
    landmarks = crop_to_normalised(transform_points(pts, tforms), template,
                                   a.landmark_scale)
    quality = [int(cv2.IMWRITE_JPEG_QUALITY), int(a.jpeg_quality)]
    wanted: dict[int, list[int]] = {}
    for j, i in enumerate(src):
        wanted.setdefault(int(i), []).append(j)
    jpegs: list[bytes | None] = [None] * n
    last = int(src[-1])
    for i, frame in enumerate(iter_frames(video_path, "rgb24")):
        for j in wanted.get(i, ()):
            crop = warp_crop(frame, tforms[j], a.image_size)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), quality)
            if not ok:
                raise ValueError(f"JPEG encoding failed at frame {j}")
            jpegs[j] = buf.tobytes()
        if i >= last:
            break
    missing = [j for j, b in enumerate(jpegs) if b is None]
    if missing:
        raise ValueError(f"{len(missing)} of {n} frames could not be decoded (landmarks exist "
                         f"for {len(pts_src)} source frames)")
    offsets = np.cumsum([0] + [len(b) for b in jpegs]).astype(np.int64)
    return {"landmarks_raw": pts.astype(np.float32), "landmarks": landmarks,
            "crop_matrices": tforms.astype(np.float32),
            "jpeg_data": np.frombuffer(b"".join(jpegs), np.uint8), "jpeg_offsets": offsets,
            "mfcc": mfcc_padded(audio, a.sample_rate)}


def record_fields(work: dict[str, np.ndarray]) -> dict:
    """The :class:`~tf_talkface.data.records.ClipRecord` fields only this recipe has, from a
    clip's work-file arrays (``{}`` for the other recipes' work files)."""
    if "jpeg_data" not in work:
        return {}
    data, off = work["jpeg_data"], work["jpeg_offsets"]
    return {"images_jpeg": [data[off[i]:off[i + 1]].tobytes() for i in range(len(off) - 1)],
            "crop_matrices": work["crop_matrices"], "mfcc": work["mfcc"]}


def normalise_atvgnet(norm: dict[str, np.ndarray], train_ids: list[str], rcfg: RecipeConfig,
                      basis_path: str | None, dataset_dir: Path
                      ) -> tuple[dict[str, np.ndarray], PCABasis, dict, dict]:
    """The dataset-wide step: PCA of the normalised landmarks (training split only, unless a
    basis is given) and what the manifest records.

    Args:
        norm: clip id -> (T, 136) normalised landmarks (:func:`clip_arrays`).
        train_ids: clip ids of the training split.
        basis_path: reuse this basis (``basis.json`` or a dataset folder) instead of fitting.
        dataset_dir: the dataset's final folder (named in the basis' source).

    Returns:
        ``(pca, basis, normalisation, schema)``: clip id -> (T, k) float32 coefficients, the
        basis (its ``template`` = the crop template in normalised units), the manifest's
        ``normalisation`` and ``schema`` sections.

    Raises:
        PrepareError: an unusable ``--basis``, or no training clip and no basis.
    """
    a = rcfg.atvgnet
    template = template_for(a.image_size)
    tmpl_norm = crop_to_normalised(template, template, a.landmark_scale).reshape(68, 2)
    if basis_path:
        try:
            basis = PCABasis.load(basis_path)
        except FileNotFoundError as e:
            raise PrepareError(str(e)) from e
        if basis.mean.shape != (136,):
            raise PrepareError(f"--basis {basis_path}: a basis of {basis.mean.shape[0]}-dim "
                               "vectors cannot project 68x2 landmarks")
    else:
        if not train_ids:
            raise PrepareError("no clip in the training split: the PCA basis is fitted on "
                               "training clips only; give --basis DATASET to prepare an "
                               "evaluation-only dataset")
        basis = fit_pca(np.concatenate([norm[c] for c in train_ids]), rcfg.n_pca,
                        template=tmpl_norm,
                        source=f"fitted on the training split of {Path(dataset_dir).name}")
    pca = {c: basis.project(v) for c, v in norm.items()}
    centre, scale = normaliser(template)
    section = {
        "method": "similarity on dlib points 27-44 to the crop template (smoothed over "
                  f"{a.smooth_frames} frames), landmarks in the crop, (p - centre) / scale x "
                  f"{a.landmark_scale:g}, PCA",
        "template_crop": np.round(template, 4).tolist(), "fit_points": ATVGNET_FIT_POINTS.tolist(),
        "centre": np.round(centre, 6).tolist(), "scale": round(scale, 6),
        "landmark_scale": a.landmark_scale, "smooth_frames": a.smooth_frames,
        "basis_file": "basis.json", "basis_source": basis.source, "n_pca": basis.n_components,
        "explained_variance_ratio": None if basis.explained_variance_ratio is None
        else np.round(basis.explained_variance_ratio, 6).tolist()}
    schema = {"landmark_dim": 136, "feature_dim": 0, "n_pca": basis.n_components,
              "audio_sample_rate": a.sample_rate, "hop": a.hop, "image_size": a.image_size,
              "image_format": "jpeg", "image_channels": 3, "jpeg_quality": a.jpeg_quality,
              "mfcc_dim": N_MFCC, "mfcc_rows_per_frame": ROWS_PER_FRAME,
              "mfcc_window_rows": WINDOW_ROWS, "mfcc_pad_samples": PAD_SAMPLES}
    return pca, basis, section, schema
