"""tf.data input pipelines over a prepared dataset: delay/context windows (2018), padded
waveforms and autoregressive conditions (2020), in-graph noise-resilient augmentation.

Order (TensorFlowTTS style): shard files -> parallel interleave -> parse -> [cache] -> shuffle
-> per-clip map (windows, noise) -> padded batch -> prefetch. No Python runs per sample.

Every example is ``(x, y, sample_weight)`` with one weight per frame (1 for real frames, 0 for
padding), so clips of any length batch together; compile losses with
``reduction="mean_with_sample_weight"`` or use the NR model, which reads the weights itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_talkface.audio.layers import stack_context
from tf_talkface.audio.waveform import pad_and_scale_tf
from tf_talkface.data.manifest import DatasetError, load_manifest, shard_paths
from tf_talkface.data.records import RecordSpec, parse_clip

AUTOTUNE = tf.data.AUTOTUNE

RECIPE_OF_MODEL = {"lstm": "eskimez2018", "cnn": "eskimez2020", "cnn_tc": "eskimez2020"}


@dataclass(frozen=True)
class WindowConfig:
    """2018 windows (reference.md "Context", "Delay").

    Attributes:
        delay: frames (40 ms each) the targets are shifted later: the output at time t is the
            face at t - delay, so the network hears ``delay`` frames of the future.
        context: previous frames concatenated to each feature frame (first frame repeated).
    """

    delay: int = 0
    context: int = 0

    def __post_init__(self):
        if self.delay < 0 or self.context < 0:
            raise ValueError(f"delay and context must be >= 0, got {self.delay}, {self.context}")


def delay_targets(y: tf.Tensor, delay: int) -> tf.Tensor:
    """Shift a (frames, dim) target sequence ``delay`` frames later, repeating the first frame at
    the start (original ``train.py``); the length is unchanged."""
    if delay == 0:
        return y
    t = tf.shape(y)[0]
    return tf.concat([tf.repeat(y[:1], delay, axis=0), y], axis=0)[:t]


def undelay(pred: np.ndarray, delay: int) -> np.ndarray:
    """Inverse used at generation: drop the first ``delay`` frames of (frames, ...) predictions
    and repeat the last frame ``delay`` times (original ``generate.py``)."""
    if delay == 0:
        return pred
    return np.concatenate([pred[delay:], np.repeat(pred[-1:], delay, axis=0)], axis=0)


def check_dataset_for_model(manifest: dict, model: str, where: str) -> None:
    """Refuse a dataset whose recipe does not feed ``model`` (clear error naming both)."""
    want = RECIPE_OF_MODEL.get(model)
    if want is None:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(RECIPE_OF_MODEL)}")
    have = manifest["recipe"]["name"]
    if have != want:
        raise DatasetError(f"{where}: model {model} needs an {want} dataset, this one is {have} "
                           f"(prepare it with --recipe {want})")
    if model != "lstm" and manifest["schema"]["audio_sample_rate"] == 0:
        raise DatasetError(f"{where}: the dataset has no audio (imported 2018 HDF5?)")


def read_clips(dataset_dir: str | os.PathLike, split: str, manifest: dict | None = None,
               shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Parsed clips (dicts, see :func:`~tf_talkface.data.records.parse_clip`) of one split,
    read with a parallel interleave over its shards.

    Raises:
        DatasetError: missing dataset/manifest/shards, or a split without clips.
    """
    manifest = manifest or load_manifest(dataset_dir)
    files = shard_paths(dataset_dir, manifest, split)
    if not files:
        raise DatasetError(f"{dataset_dir}: the {split} split has no clips")
    spec = RecordSpec.from_manifest(manifest)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed)
    # deterministic order: multi-worker DATA sharding needs every worker to see the same order
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                       num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.map(lambda s: parse_clip(s, spec), num_parallel_calls=AUTOTUNE)


def lstm_example(clip: dict, window: WindowConfig):
    """2018 example: (features with context (T, 128 (c+1)), delayed targets (T, 136), ones (T,))."""
    x = stack_context(clip["features"], window.context)
    y = delay_targets(clip["landmarks"], window.delay)
    return x, y, tf.ones(tf.shape(y)[:1], tf.float32)


def initial_condition(dataset_dir: str | os.PathLike) -> np.ndarray:
    """The autoregressive model's starting condition: PCA coefficients of the dataset's template
    face (reference.md, "Autoregressive"). (k,) float32."""
    from tf_talkface.face.pca import PCABasis

    basis = PCABasis.load(dataset_dir)
    if basis.template is None:
        return np.zeros(basis.n_components, np.float32)
    return basis.project(basis.template).astype(np.float32)


def _cnn_inputs(clip, tc: bool, init_cond, noise_bank, seed):
    y = clip["pca"]
    t = tf.shape(y)[0]
    w = tf.ones([t], tf.float32)
    speech = clip["audio"]
    cond = None
    if tc:
        cond = tf.concat([tf.cast(init_cond, tf.float32)[None], y[:-1]], axis=0)
    if noise_bank is None:
        x = pad_and_scale_tf(speech, t)
        return ((x, cond) if tc else x), y, w
    clean, noisy = noise_bank.nr_pair(speech, seed=seed)
    xs = (pad_and_scale_tf(noisy, t), pad_and_scale_tf(clean, t))
    return (xs + (cond,) if tc else xs), y, w


def make_dataset(dataset_dir: str | os.PathLike, split: str, model: str, batch_size: int = 128,
                 window: WindowConfig = WindowConfig(), noise_bank=None, shuffle: bool = True,
                 seed: int = 0, cache: bool = False, repeat: bool = False,
                 shuffle_buffer: int = 2048, drop_remainder: bool = False) -> tf.data.Dataset:
    """Batched training/evaluation dataset for ``model`` (``lstm``, ``cnn``, ``cnn_tc``).

    Element structure (all float32, padded to the longest clip of the batch):
      * ``lstm``: ``x`` (B, T, 128 (context+1)), ``y`` (B, T, 136) delayed, ``w`` (B, T).
      * ``cnn``: ``x`` (B, 320 (T-1) + 2240) max-scaled, zero-padded waveform at 8 kHz,
        ``y`` (B, T, k) PCA coefficients, ``w`` (B, T).
      * ``cnn_tc``: ``x = (waveform, condition (B, T, k))``; condition[t] = y[t-1], the template
        face's coefficients at t = 0 (teacher forcing).
      * with ``noise_bank`` (noise-resilient mode): the waveform becomes ``(noisy, clean)``
        (``(noisy, clean, condition)`` for ``cnn_tc``), gain-augmented and mixed at the 2020
        paper's SNRs in-graph (:meth:`~tf_talkface.audio.noise.NoiseBank.nr_pair`), new draws
        every epoch. Note: both waveforms are then peak-normalised like the original's
        generation input, which cancels the gain augmentation (kept for fidelity; a no-op).

    Raises:
        DatasetError: dataset problems, or a dataset recipe that does not feed ``model``.
        ValueError: noise with the LSTM (not part of the 2018 recipe here).
    """
    manifest = load_manifest(dataset_dir)
    check_dataset_for_model(manifest, model, str(dataset_dir))
    ds = read_clips(dataset_dir, split, manifest, shuffle_files=shuffle, seed=seed)
    keep = ("features", "landmarks") if model == "lstm" else ("audio", "pca")
    ds = ds.map(lambda c: {k: c[k] for k in keep})  # cache only what the model reads
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if model == "lstm":
        if noise_bank is not None:
            raise ValueError("noise-resilient training is defined for the cnn/cnn_tc models")
        ds = ds.map(lambda c: lstm_example(c, window), num_parallel_calls=AUTOTUNE)
    else:
        tc = model == "cnn_tc"
        init = initial_condition(dataset_dir) if tc else None
        if noise_bank is not None:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda c, s: _cnn_inputs(c, tc, init, noise_bank, s), num_parallel_calls=AUTOTUNE)
        else:
            ds = ds.map(lambda c: _cnn_inputs(c, tc, init, None, None), num_parallel_calls=AUTOTUNE)
    ds = ds.padded_batch(batch_size, drop_remainder=drop_remainder)
    if not repeat:  # known length: Keras shows an ETA and does not warn at the end of epoch 1
        n = int(manifest["counts"][split])
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            n // batch_size if drop_remainder else -(-n // batch_size)))
    # Multi-worker training: shard by element, which works for any number of shard files
    # (FILE sharding needs at least one file per worker).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(AUTOTUNE)

