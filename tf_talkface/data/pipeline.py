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
from tf_talkface.audio.level import compress_tf, normalise_level_tf
from tf_talkface.audio.waveform import HOP, SAMPLE_RATE, WINDOW, pad_and_scale_tf
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


def mel_warp(features: tf.Tensor, alpha: tf.Tensor, n_mels: int) -> tf.Tensor:
    """Vocal-tract-length perturbation on mel-band features: each block of ``n_mels`` bands is
    resampled along the band axis, band ``i`` reading position ``i / alpha`` (linear
    interpolation, edge bands repeated), so ``alpha > 1`` moves spectral detail up (a shorter
    vocal tract). Deltas are linear per band, so warping delta features equals warping the
    log-mel before the deltas.

    Args:
        features: float32 (T, k * n_mels) (2018: delta and delta-delta, k = 2).
        alpha: scalar warp factor (VTLP: about 0.8-1.25).

    Returns:
        float32, same shape.
    """
    pos = tf.clip_by_value(tf.range(n_mels, dtype=tf.float32) / tf.cast(alpha, tf.float32),
                           0.0, n_mels - 1.0)
    lo = tf.cast(tf.floor(pos), tf.int32)
    hi = tf.minimum(lo + 1, n_mels - 1)
    frac = pos - tf.cast(lo, tf.float32)
    t = tf.shape(features)[0]
    blocks = tf.reshape(features, [t, -1, n_mels])
    out = tf.gather(blocks, lo, axis=2) * (1.0 - frac) + tf.gather(blocks, hi, axis=2) * frac
    return tf.reshape(out, tf.shape(features))


def lstm_example(clip: dict, window: WindowConfig, seed=None, vtlp: float = 0.0, n_mels: int = 64):
    """2018 example: (features with context (T, 128 (c+1)), delayed targets (T, 136), ones (T,)).

    ``vtlp > 0`` (training augmentation, issue 11): a mel-axis warp (:func:`mel_warp`) with a
    factor drawn log-uniformly in [1/(1+vtlp), 1+vtlp] per clip (stateless in ``seed``)."""
    feats = clip["features"]
    if vtlp > 0:
        u = tf.random.stateless_uniform([], seed=tf.cast(seed, tf.int64), minval=-1.0, maxval=1.0)
        feats = mel_warp(feats, tf.exp(u * float(np.log1p(vtlp))), n_mels)
    x = stack_context(feats, window.context)
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


@dataclass(frozen=True)
class AugmentConfig:
    """Level augmentation of the 2020 waveform input (issue 11; our addition to the recipe).

    Attributes:
        gain_db: the normalised level is offset by a gain uniform in [-gain_db, +gain_db] dB
            (before the limiter), so residual level errors (a causal level estimate in a
            stream, gating on unusual input) do not drive the mouth. Needs a loudness level.
        compress_p: probability of a random dynamic range compression before normalisation
            (threshold 0-15 dB below the clip's peak, ratio 2-8), as in broadcast speech.
    """

    gain_db: float = 0.0
    compress_p: float = 0.0

    @property
    def active(self) -> bool:
        return self.gain_db > 0 or self.compress_p > 0


def _augment_and_scale(speech, t, level, aug, seed):
    """Waveform -> padded network input: optional compression, level normalisation with a
    random gain offset (stateless in ``seed``), padding."""
    if aug is None or not aug.active:
        return pad_and_scale_tf(speech, t, level=level)
    s = tf.cast(seed, tf.int64) + tf.constant([0, 1000], tf.int64)
    u = tf.random.stateless_uniform([4], seed=s)
    x = speech
    if aug.compress_p > 0:
        peak_db = 20.0 * tf.math.log(tf.reduce_max(tf.abs(x)) + 1e-9) / np.log(10.0)
        comp = compress_tf(x, SAMPLE_RATE, peak_db - 15.0 * u[1], 2.0 + 6.0 * u[2])
        x = tf.where(u[0] < aug.compress_p, comp, x)
    x = normalise_level_tf(x, SAMPLE_RATE, level, extra_gain_db=aug.gain_db * (2.0 * u[3] - 1.0))
    return pad_and_scale_tf(x, t, peak=1.0)


def _crop(xs, y, cond, frames: int, seed):
    """A random window of ``frames`` frames of a padded 2020 example (same offset for every
    waveform of ``xs``): the fully-convolutional net then sees ``320 (frames - 1) + 2240``
    samples and predicts exactly those frames. Clips shorter than ``frames`` stay whole."""
    t = tf.shape(y)[0]
    n = tf.minimum(t, frames)
    s = tf.random.stateless_uniform([], seed=tf.cast(seed, tf.int64) + tf.constant([7, 0], tf.int64),
                                    maxval=t - n + 1, dtype=tf.int32)
    xs = tuple(x[HOP * s: HOP * (s + n - 1) + WINDOW] for x in xs)
    return xs, y[s:s + n], (None if cond is None else cond[s:s + n]), tf.ones([n], tf.float32)


def _cnn_inputs(clip, tc: bool, init_cond, noise_bank, seed, level=None, aug=None, crop=0):
    y = clip["pca"]
    t = tf.shape(y)[0]
    w = tf.ones([t], tf.float32)
    speech = clip["audio"]
    cond = None
    if tc:
        cond = tf.concat([tf.cast(init_cond, tf.float32)[None], y[:-1]], axis=0)
    if noise_bank is None:
        xs = (_augment_and_scale(speech, t, level, aug, seed),)
    else:
        clean, noisy = noise_bank.nr_pair(speech, seed=seed)
        # the same augmentation draw for both members of the pair: they differ by noise only
        xs = (_augment_and_scale(noisy, t, level, aug, seed),
              _augment_and_scale(clean, t, level, aug, seed))
    if crop:
        xs, y, cond, w = _crop(xs, y, cond, crop, seed)
    xs = xs[0] if noise_bank is None else xs
    if tc:
        xs = (xs, cond) if noise_bank is None else xs + (cond,)
    return xs, y, w


def make_dataset(dataset_dir: str | os.PathLike, split: str, model: str, batch_size: int = 128,
                 window: WindowConfig = WindowConfig(), noise_bank=None, shuffle: bool = True,
                 seed: int = 0, cache: bool = False, repeat: bool = False,
                 shuffle_buffer: int = 2048, drop_remainder: bool = False,
                 level=None, augment: AugmentConfig | None = None,
                 vtlp: float = 0.0, crop_frames: int = 0) -> tf.data.Dataset:
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
      * ``crop_frames`` (cnn models, training): a random window of that many frames per clip
        and epoch (:func:`_crop`), for more updates per CPU-minute.
      * ``vtlp`` (lstm): mel-axis vocal-tract-length perturbation, see :func:`lstm_example`.
      * ``level`` (:class:`~tf_talkface.audio.level.LevelConfig`, cnn models): the input level
        normalisation (``None``: the paper's peak); ``augment``: random compression and level
        offsets (:class:`AugmentConfig`; a loudness ``level`` is needed for the gain offset).

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
        if vtlp > 0:
            n_mels = int(manifest["recipe"]["logmel"]["n_mels"])
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda c, s: lstm_example(c, window, s, vtlp, n_mels), num_parallel_calls=AUTOTUNE)
        else:
            ds = ds.map(lambda c: lstm_example(c, window), num_parallel_calls=AUTOTUNE)
    else:
        tc = model == "cnn_tc"
        init = initial_condition(dataset_dir) if tc else None
        if augment is not None and augment.gain_db > 0 and (level is None or level.mode == "peak"):
            raise ValueError("level gain augmentation needs a loudness level normalisation "
                             "(peak normalisation would undo it)")
        if noise_bank is not None or (augment is not None and augment.active) or crop_frames:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda c, s: _cnn_inputs(c, tc, init, noise_bank, s, level, augment, crop_frames),
                num_parallel_calls=AUTOTUNE)
        else:
            ds = ds.map(lambda c: _cnn_inputs(c, tc, init, None, None, level),
                        num_parallel_calls=AUTOTUNE)
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

