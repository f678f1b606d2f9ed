"""TFRecord schema of a tf_talkface dataset: one ``tf.train.SequenceExample`` per clip.

Schema (documented for users in ``docs/records.md``):

context features
    ``clip_id`` bytes, ``speaker`` bytes, ``split`` bytes (train/val/test), ``source`` bytes (video
    path relative to its ``--videos`` root), ``recipe`` bytes, ``num_frames`` int64 (T, frames at
    25 fps), ``audio_sample_rate`` int64 (Hz), ``audio_pcm16`` bytes (mono int16 little-endian PCM,
    exactly T * hop samples, hop = sample_rate / 25).
feature lists (one entry per frame, T entries)
    ``landmarks_raw`` float[136]: dlib 68-point pixel coordinates resampled to 25 fps (x0, y0, ...);
    ``landmarks`` float[68*D]: the recipe's normalised landmarks (2018: the 136-dim target;
    2020: Procrustes-aligned, identity-removed; atvgnet: in the aligned crop, template-normalised
    x5);
    ``features`` float[128] (2018 only): log-mel delta + delta-delta;
    ``pca`` float[k] (2020, atvgnet): PCA coefficients of ``landmarks`` (the 2020 target);
    ``image_jpeg`` bytes (atvgnet): the aligned face crop of the frame, JPEG (RGB);
    ``crop_matrix`` float[6] (atvgnet): the frame -> crop similarity ``[A | t]`` row-major.
feature list with its own length (atvgnet)
    ``mfcc`` float[12]: the MFCC of the audio padded with 1920 zeros on each side, 100 rows/s
    (:mod:`tf_talkface.audio.mfcc`; ``4 T + 23`` rows).

All writers go through :class:`ShardWriter`, which writes ``NAME.tmp`` and renames it on close,
so a shard file that exists is complete.
"""
from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

SHARD_SUFFIX = ".tfrecord"


def _tf():
    import tensorflow as tf  # imported lazily: workers of `prepare` never need TensorFlow

    return tf


def pcm16_bytes(audio: np.ndarray) -> bytes:
    """float audio in [-1, 1] (samples,) -> int16 little-endian bytes (clipped)."""
    a = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    return (np.round(a * 32767.0)).astype("<i2").tobytes()


def pcm16_to_float(b: bytes) -> np.ndarray:
    """Inverse of :func:`pcm16_bytes`: (samples,) float32."""
    return np.frombuffer(b, dtype="<i2").astype(np.float32) / 32767.0


@dataclass
class ClipRecord:
    """One clip, ready to serialise. Arrays are float32 with T = ``num_frames`` rows."""

    clip_id: str
    speaker: str
    split: str
    source: str
    recipe: str
    audio: np.ndarray            # (T * hop,) float32 in [-1, 1]
    audio_sample_rate: int
    landmarks_raw: np.ndarray | None  # (T, 68, 2) pixels; None for imported HDF5 data
    landmarks: np.ndarray        # (T, 68, D) normalised
    features: np.ndarray | None = None  # (T, 128) 2018
    pca: np.ndarray | None = None       # (T, k) 2020, atvgnet
    images_jpeg: list[bytes] | None = None  # T JPEG crops, atvgnet
    crop_matrices: np.ndarray | None = None  # (T, 2, 3) frame -> crop, atvgnet
    mfcc: np.ndarray | None = None      # (rows, 12) MFCC of the padded audio, atvgnet

    @property
    def num_frames(self) -> int:
        return int(self.landmarks.shape[0])


def serialize_clip(rec: ClipRecord) -> bytes:
    """Serialise a :class:`ClipRecord` to a ``SequenceExample`` string.

    Raises:
        ValueError: arrays whose frame counts disagree.
    """
    tf = _tf()
    t = rec.num_frames
    for name in ("landmarks_raw", "features", "pca", "images_jpeg", "crop_matrices"):
        arr = getattr(rec, name)
        if arr is not None and len(arr) != t:
            raise ValueError(f"clip {rec.clip_id}: {name} has {len(arr)} frames, landmarks {t}")

    def b(v: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))

    def i(v: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    def flist(arr: np.ndarray, rows: int = t):
        arr = np.asarray(arr, np.float32).reshape(rows, -1)
        return tf.train.FeatureList(feature=[
            tf.train.Feature(float_list=tf.train.FloatList(value=row)) for row in arr])

    context = tf.train.Features(feature={
        "clip_id": b(rec.clip_id), "speaker": b(rec.speaker), "split": b(rec.split),
        "source": b(rec.source), "recipe": b(rec.recipe), "num_frames": i(t),
        "audio_sample_rate": i(rec.audio_sample_rate),
        "audio_pcm16": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm16_bytes(rec.audio)])),
    })
    lists = {"landmarks": flist(rec.landmarks)}
    if rec.landmarks_raw is not None:
        lists["landmarks_raw"] = flist(rec.landmarks_raw)
    if rec.features is not None:
        lists["features"] = flist(rec.features)
    if rec.pca is not None:
        lists["pca"] = flist(rec.pca)
    if rec.images_jpeg is not None:
        lists["image_jpeg"] = tf.train.FeatureList(feature=[
            tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(j)])) for j in rec.images_jpeg])
    if rec.crop_matrices is not None:
        lists["crop_matrix"] = flist(rec.crop_matrices)
    if rec.mfcc is not None:
        lists["mfcc"] = flist(rec.mfcc, len(rec.mfcc))
    ex = tf.train.SequenceExample(context=context,
                                  feature_lists=tf.train.FeatureLists(feature_list=lists))
    return ex.SerializeToString()


@dataclass(frozen=True)
class RecordSpec:
    """Per-frame dims of a dataset's feature lists (from its manifest)."""

    landmark_dim: int = 136        # 68 * D of ``landmarks``
    feature_dim: int = 0           # 128 for 2018, 0 = absent
    n_pca: int = 0                 # k for 2020 and atvgnet, 0 = absent
    raw_landmarks: bool = True     # False for data imported from the original HDF5 files
    image_size: int = 0            # atvgnet: side of the JPEG crops (with crop_matrix), 0 = absent
    mfcc_dim: int = 0              # atvgnet: 12, 0 = absent

    @classmethod
    def from_manifest(cls, manifest: dict) -> "RecordSpec":
        s = manifest["schema"]
        return cls(landmark_dim=s["landmark_dim"], feature_dim=s.get("feature_dim", 0),
                   n_pca=s.get("n_pca", 0), raw_landmarks=s.get("raw_landmarks", True),
                   image_size=s.get("image_size", 0), mfcc_dim=s.get("mfcc_dim", 0))


def parse_clip(serialized, spec: RecordSpec) -> dict:
    """Parse one serialised clip into a dict of tensors (works inside ``tf.data`` maps).

    Returns:
        ``clip_id``, ``speaker``, ``split``, ``source`` (string scalars), ``num_frames`` (int64),
        ``audio_sample_rate`` (int64), ``audio`` (samples,) float32 in [-1, 1],
        ``landmarks_raw`` (T, 136) unless ``spec.raw_landmarks`` is False, ``landmarks``
        (T, landmark_dim), and ``features`` (T, 128) /
        ``pca`` (T, k) when the spec has them; all float32. atvgnet also: ``image_jpeg`` (T,)
        string (JPEG bytes, decoded by :mod:`tf_talkface.data.pixels`), ``crop_matrix``
        (T, 2, 3) float32, ``mfcc`` (rows, 12) float32.
    """
    tf = _tf()
    ctx_spec = {
        "clip_id": tf.io.FixedLenFeature([], tf.string),
        "speaker": tf.io.FixedLenFeature([], tf.string),
        "split": tf.io.FixedLenFeature([], tf.string),
        "source": tf.io.FixedLenFeature([], tf.string),
        "recipe": tf.io.FixedLenFeature([], tf.string),
        "num_frames": tf.io.FixedLenFeature([], tf.int64),
        "audio_sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "audio_pcm16": tf.io.FixedLenFeature([], tf.string),
    }
    seq_spec = {"landmarks": tf.io.FixedLenSequenceFeature([spec.landmark_dim], tf.float32)}
    if spec.raw_landmarks:
        seq_spec["landmarks_raw"] = tf.io.FixedLenSequenceFeature([136], tf.float32)
    if spec.feature_dim:
        seq_spec["features"] = tf.io.FixedLenSequenceFeature([spec.feature_dim], tf.float32)
    if spec.n_pca:
        seq_spec["pca"] = tf.io.FixedLenSequenceFeature([spec.n_pca], tf.float32)
    if spec.image_size:
        seq_spec["image_jpeg"] = tf.io.FixedLenSequenceFeature([], tf.string)
        seq_spec["crop_matrix"] = tf.io.FixedLenSequenceFeature([6], tf.float32)
    if spec.mfcc_dim:
        seq_spec["mfcc"] = tf.io.FixedLenSequenceFeature([spec.mfcc_dim], tf.float32)
    ctx, seq = tf.io.parse_single_sequence_example(serialized, ctx_spec, seq_spec)
    out = dict(ctx)
    out.update(seq)
    if spec.image_size:
        out["crop_matrix"] = tf.reshape(out["crop_matrix"], [-1, 2, 3])
    pcm = tf.io.decode_raw(out.pop("audio_pcm16"), tf.int16, little_endian=True)
    out["audio"] = tf.cast(pcm, tf.float32) / 32767.0
    return out


@contextlib.contextmanager
def _as_os_error(path: Path):
    """TensorFlow's file errors (``ResourceExhaustedError`` for a full disk, ...) as the
    ``OSError`` every other writer raises, naming ``path``."""
    tf = _tf()
    try:
        yield
    except tf.errors.OpError as e:
        code = {tf.errors.ResourceExhaustedError: errno.ENOSPC,
                tf.errors.PermissionDeniedError: errno.EACCES,
                tf.errors.NotFoundError: errno.ENOENT}.get(type(e), errno.EIO)
        raise OSError(code, os.strerror(code), str(path)) from e


class ShardWriter:
    """Writes clips into size-bounded shards ``{prefix}-{i:05d}.tfrecord`` atomically.

    Each shard is written as ``*.tmp`` and renamed when closed, so a killed run never leaves a
    partial file under a shard name. ``shards`` lists ``(file name, n_clips, bytes)`` of the
    closed shards.

    Args:
        out_dir: dataset folder. prefix: usually the split name. max_bytes: start a new shard
            past this size (default 200 MB).
    """

    def __init__(self, out_dir: str | os.PathLike, prefix: str, max_bytes: int = 200 * 2 ** 20):
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.shards: list[tuple[str, int, int]] = []
        self._writer = None
        self._n = 0
        self._bytes = 0

    def _open(self):
        tf = _tf()
        name = f"{self.prefix}-{len(self.shards):05d}{SHARD_SUFFIX}"
        self._name = name
        with _as_os_error(self.out_dir / (name + ".tmp")):
            self._writer = tf.io.TFRecordWriter(str(self.out_dir / (name + ".tmp")))
        self._n = 0
        self._bytes = 0

    def write(self, serialized: bytes) -> str:
        """Append one serialised clip; returns the shard file name it went to.

        Raises:
            OSError: the shard cannot be written (full disk, permissions), naming the file."""
        if self._writer is not None and self._bytes + len(serialized) > self.max_bytes and self._n:
            self._close_current()
        if self._writer is None:
            self._open()
        with _as_os_error(self.out_dir / (self._name + ".tmp")):
            self._writer.write(serialized)
        self._n += 1
        self._bytes += len(serialized)
        return self._name

    def _close_current(self):
        with _as_os_error(self.out_dir / (self._name + ".tmp")):
            self._writer.close()
        os.replace(self.out_dir / (self._name + ".tmp"), self.out_dir / self._name)
        self.shards.append((self._name, self._n, self._bytes))
        self._writer = None

    def close(self) -> list[tuple[str, int, int]]:
        if self._writer is not None:
            self._close_current()
        return self.shards

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        elif self._writer is not None:
            self._writer.close()
            (self.out_dir / (self._name + ".tmp")).unlink(missing_ok=True)
            self._writer = None


def iter_clips(files: Iterable[str | os.PathLike], spec: RecordSpec) -> Iterator[dict]:
    """Read clips from shard files eagerly as numpy dicts (string scalars decoded to ``str``;
    ``image_jpeg`` stays an object array of ``bytes``).

    Raises:
        ValueError: a corrupt shard, naming the file.
    """
    tf = _tf()
    for f in files:
        try:
            for raw in tf.data.TFRecordDataset(str(f)):
                clip = parse_clip(raw, spec)
                yield {k: (v.numpy().decode() if v.dtype == tf.string and v.shape.rank == 0
                           else v.numpy())
                       for k, v in clip.items()}
        except tf.errors.DataLossError as e:
            raise ValueError(f"{f}: corrupt TFRecord shard ({e.message.splitlines()[0]})") from e
