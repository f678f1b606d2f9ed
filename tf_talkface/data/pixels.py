"""tf.data pipelines over pixel datasets (``prepare --recipe atvgnet``), shared by ATVGnet and,
later, DAVS.

Order: shards -> parallel interleave -> parse -> keep the keys a sampler reads -> [cache] ->
[repeat] -> one random seed per element -> [shuffle] -> sample (JPEGs of the chosen frames
decoded here, in-graph) -> batch -> prefetch. No Python runs per sample.

Samplers (the original's, ``atvgnet_davs.md`` A7; T = ``frames``, 16 by default):

* :func:`atnet_dataset` -- AT-net: example frame ``r`` uniform in ``[0, n - T - 1]``, targets
  ``r + 1 ... r + T``. Element ``(x, y)``: ``x = {"example_pca": (B, 6), "mfcc": (B, T, 28,
  12)}``, ``y`` = PCA coefficients ``(B, T, 6)``; ``mfcc[t]`` is the window of target frame
  ``r + 1 + t`` (:func:`tf_talkface.audio.mfcc.mfcc_windows_tf` on the stored MFCC of the padded
  utterance; every frame has a window, so unlike the original's GRID range ``r ~ U{6..49}`` no
  frame is excluded).
* :func:`vgnet_dataset` -- VG-net: ``T`` consecutive frames from a start uniform in
  ``[0, n - T]``, example = a uniformly random frame of the same clip (may lie inside the
  window, as in the original). Element ``(x, y)``: ``x = {"example_image": (B, H, W, 3),
  "example_landmarks": (B, 136), "landmarks": (B, T, 136)}``, ``y`` = frames ``(B, T, H, W,
  3)``. Images float32 in ``value_range`` (ATVGnet [-1, 1]; DAVS [0, 1]), resized to
  ``image_size`` if given (area for shrinking, bilinear for enlarging); landmarks are the
  normalised x5 vectors, which do not depend on the image size.

All float32. Clips too short for a sample (AT-net: ``T + 1`` frames, VG-net: ``T``) are dropped. ``deterministic=True`` (evaluation)
draws each sample from ``(seed, element index)``, so every pass yields the same samples in the
same order; otherwise (training) the draws change every epoch (reproducibly under ``seed``).
"""
from __future__ import annotations

import os

import tensorflow as tf

from tf_talkface.audio.mfcc import ROWS_PER_FRAME, mfcc_windows_tf
from tf_talkface.data.manifest import DatasetError, load_manifest
from tf_talkface.data.pipeline import read_clips

AUTOTUNE = tf.data.AUTOTUNE

__all__ = ["check_pixel_dataset", "pixel_clips", "decode_frames", "atnet_sample",
           "vgnet_sample", "atnet_dataset", "vgnet_dataset"]


def check_pixel_dataset(manifest: dict, where: str, need_pca: bool = False) -> None:
    """Refuse a dataset without face crops (or, with ``need_pca``, without PCA coefficients)
    with a clear error naming ``where``."""
    s = manifest.get("schema", {})
    if not s.get("image_size"):
        raise DatasetError(f"{where}: a {manifest.get('recipe', {}).get('name')} dataset has no "
                           "face crops; prepare it with --recipe atvgnet")
    if need_pca and not s.get("n_pca"):
        raise DatasetError(f"{where}: the dataset has no PCA coefficients")


def pixel_clips(dataset_dir: str | os.PathLike, split: str, keys: tuple[str, ...],
                min_frames: int = 1, manifest: dict | None = None, shuffle_files: bool = False,
                seed: int | None = None) -> tf.data.Dataset:
    """Parsed clips of one split with only ``keys`` (plus ``num_frames``), clips of fewer than
    ``min_frames`` frames dropped.

    Raises:
        DatasetError: a missing/incomplete dataset, a split without clips, or no face crops.
    """
    manifest = manifest or load_manifest(dataset_dir)
    check_pixel_dataset(manifest, str(dataset_dir), need_pca="pca" in keys)
    keep = tuple(dict.fromkeys(keys + ("num_frames",)))
    ds = read_clips(dataset_dir, split, manifest, shuffle_files=shuffle_files, seed=seed)
    ds = ds.map(lambda c: {k: c[k] for k in keep}, num_parallel_calls=AUTOTUNE)
    return ds.filter(lambda c: c["num_frames"] >= min_frames)


def decode_frames(jpegs: tf.Tensor, stored_size: int, image_size: int | None = None,
                  value_range: tuple[float, float] = (-1.0, 1.0)) -> tf.Tensor:
    """JPEG strings (N,) -> float32 (N, H, W, 3) in ``value_range``.

    Args:
        jpegs: string (N,) tensor of JPEG bytes, square crops of ``stored_size`` pixels (the
            manifest's ``schema.image_size``).
        image_size: output side (``None`` or ``stored_size``: as stored; smaller: area
            averaging; larger: bilinear).
        value_range: ``(low, high)`` the pixel values 0 and 255 map to.
    """
    # INTEGER_ACCURATE: libjpeg's ISLOW IDCT, the same pixels as OpenCV/Pillow (TF's default,
    # INTEGER_FAST, differs by up to 3 levels)
    imgs = tf.map_fn(lambda j: tf.io.decode_jpeg(j, channels=3, dct_method="INTEGER_ACCURATE"),
                     jpegs,
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    x = tf.ensure_shape(tf.cast(imgs, tf.float32) / 255.0, [None, stored_size, stored_size, 3])
    if image_size is not None and image_size != stored_size:
        method = "area" if image_size < stored_size else "bilinear"
        x = tf.image.resize(x, [image_size, image_size], method=method)
    lo, hi = float(value_range[0]), float(value_range[1])
    return x * (hi - lo) + lo


def _uniform_ints(seed: tf.Tensor, highs: list[tf.Tensor]) -> list[tf.Tensor]:
    """One integer uniform in ``[0, high)`` per entry of ``highs``, from a stateless seed."""
    u = tf.random.stateless_uniform([len(highs)], seed=seed, dtype=tf.float32)
    return [tf.minimum(tf.cast(tf.floor(u[i] * tf.cast(h, tf.float32)), tf.int32), h - 1)
            for i, h in enumerate(highs)]


def atnet_sample(clip: dict, seed: tf.Tensor, frames: int = 16) -> tuple[dict, tf.Tensor]:
    """One AT-net sample from a parsed clip (``pca``, ``mfcc``, ``num_frames``); see the module
    docstring. ``seed``: int (2,) stateless seed."""
    n = tf.cast(clip["num_frames"], tf.int32)
    (r,) = _uniform_ints(seed, [n - frames])
    pca = clip["pca"]
    start = ROWS_PER_FRAME * (r + 1)
    windows = mfcc_windows_tf(clip["mfcc"][start:], frames)
    x = {"example_pca": pca[r], "mfcc": tf.ensure_shape(windows, [frames, 28, 12])}
    return x, pca[r + 1:r + 1 + frames]


def vgnet_sample(clip: dict, seed: tf.Tensor, stored_size: int, frames: int = 16,
                 image_size: int | None = None, value_range: tuple[float, float] = (-1.0, 1.0)
                 ) -> tuple[dict, tf.Tensor]:
    """One VG-net sample from a parsed clip (``image_jpeg``, ``landmarks``, ``num_frames``);
    see the module docstring. ``seed``: int (2,) stateless seed; ``stored_size``, ``image_size``,
    ``value_range``: :func:`decode_frames`."""
    n = tf.cast(clip["num_frames"], tf.int32)
    start, ex = _uniform_ints(seed, [n - frames + 1, n])
    idx = tf.concat([[ex], tf.range(start, start + frames)], axis=0)
    imgs = decode_frames(tf.gather(clip["image_jpeg"], idx), stored_size, image_size, value_range)
    lms = clip["landmarks"]
    x = {"example_image": imgs[0], "example_landmarks": lms[ex],
         "landmarks": lms[start:start + frames]}
    return x, imgs[1:]


def _sampled(ds: tf.data.Dataset, fn, batch_size: int, training: bool, seed: int | None,
             deterministic: bool, shuffle_buffer: int, samples_per_clip: int,
             cache: bool) -> tf.data.Dataset:
    if cache:
        ds = ds.cache()
    if samples_per_clip > 1:
        ds = ds.repeat(samples_per_clip)
    if deterministic:
        s0 = tf.constant(0 if seed is None else seed, tf.int64)
        ds = ds.enumerate().map(lambda i, c: (c, tf.stack([s0, i])))
    else:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic or None)
    ds = ds.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(AUTOTUNE)


def atnet_dataset(dataset_dir: str | os.PathLike, split: str, batch_size: int = 16,
                  frames: int = 16, training: bool = True, seed: int | None = None,
                  deterministic: bool = False, shuffle_buffer: int = 1024,
                  samples_per_clip: int = 1, cache: bool = True) -> tf.data.Dataset:
    """AT-net batches ``({"example_pca": (B, 6), "mfcc": (B, T, 28, 12)}, (B, T, 6))``.

    Args:
        dataset_dir, split: an ``atvgnet`` dataset and ``train``/``val``/``test``.
        batch_size: B (16 in the original). frames: T (16).
        training: shuffle and drop the last partial batch (else keep it, no shuffle).
        seed: seed of the shuffle and the draws (``None``: nondeterministic unless
            ``deterministic``). deterministic: the same samples every pass (evaluation).
        samples_per_clip: samples drawn from each clip per pass (each its own draw).
        cache: keep the parsed clips in memory after the first pass.

    Raises:
        DatasetError: not a pixel dataset with PCA, missing shards, an empty split.
    """
    ds = pixel_clips(dataset_dir, split, ("pca", "mfcc"), frames + 1, shuffle_files=training,
                     seed=seed)
    return _sampled(ds, lambda c, s: atnet_sample(c, s, frames), batch_size, training, seed,
                    deterministic, shuffle_buffer, samples_per_clip, cache)


def vgnet_dataset(dataset_dir: str | os.PathLike, split: str, batch_size: int = 10,
                  frames: int = 16, image_size: int | None = None,
                  value_range: tuple[float, float] = (-1.0, 1.0), training: bool = True,
                  seed: int | None = None, deterministic: bool = False,
                  shuffle_buffer: int = 256, samples_per_clip: int = 1,
                  cache: bool = True) -> tf.data.Dataset:
    """VG-net batches ``({"example_image": (B, H, W, 3), "example_landmarks": (B, 136),
    "landmarks": (B, T, 136)}, (B, T, H, W, 3))``.

    Args:
        image_size: H = W of the output (64/96/128; ``None``: the stored 128).
        value_range: pixel range, (-1, 1) for ATVGnet, (0, 1) for DAVS.
        Others as :func:`atnet_dataset` (batch 10 in the original). The cache holds the JPEG
        bytes (about 0.5 MB per 3-s clip), never decoded frames.

    Raises:
        DatasetError: not a pixel dataset, missing shards, an empty split.
    """
    manifest = load_manifest(dataset_dir)
    ds = pixel_clips(dataset_dir, split, ("image_jpeg", "landmarks"), frames, manifest,
                     shuffle_files=training, seed=seed)
    stored = int(manifest["schema"]["image_size"])
    fn = lambda c, s: vgnet_sample(c, s, stored, frames, image_size, value_range)  # noqa: E731
    return _sampled(ds, fn, batch_size, training, seed, deterministic, shuffle_buffer,
                    samples_per_clip, cache)
