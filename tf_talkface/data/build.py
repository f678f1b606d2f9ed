"""What every dataset builder shares: splits, feature statistics, the shards-then-manifest writer.

Both builders use these: :mod:`tf_talkface.prepare` (videos -> clips) and
:mod:`tf_talkface.data.hdf5` (the original projects' HDF5 files). Neither imports the other for
them.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import numpy as np

from tf_talkface.data.manifest import MANIFEST, SPLITS, write_json_atomic
from tf_talkface.data import records as schema  # attributes looked up at call time (tests patch them)

__all__ = ["PrepareError", "parse_split", "assign_splits", "feature_stats", "write_dataset"]


class PrepareError(RuntimeError):
    """Nothing usable was produced, or the arguments are inconsistent."""


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> fractions of train/val/test (must sum to 1).

    Raises:
        PrepareError: not three non-negative numbers summing to 1.
    """
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise PrepareError(f"--split {text!r}: give three non-negative fractions summing to 1, "
                           "e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


def assign_splits(keys: list[str], fractions: tuple[float, float, float], seed: int
                  ) -> dict[str, str]:
    """Deterministically assign each key (clip id or speaker) to train/val/test.

    Keys are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut by the fractions
    (rounded; every non-zero fraction gets at least one key when there are enough keys).

    Returns:
        ``{key: "train" | "val" | "test"}`` for every distinct key.
    """
    keys = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(keys))
    n = len(keys)
    counts = [int(round(f * n)) for f in fractions]
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0 and n >= sum(1 for x in fractions if x > 0):
            counts[i] = 1
    while sum(counts) > n:
        counts[int(np.argmax(counts))] -= 1
    counts[0] += n - sum(counts)
    out, pos = {}, 0
    for split, c in zip(SPLITS, counts):
        for idx in order[pos:pos + c]:
            out[keys[idx]] = split
        pos += c
    return out


def feature_stats(arrays: list[np.ndarray]) -> dict:
    """Per-dimension statistics of a manifest's ``feature_stats`` entry.

    Args:
        arrays: arrays (n_i, ...) of one feature (e.g. each training clip's landmarks
            (frames, 68, 2)); each is flattened to (n_i, dims) and all are stacked.

    Returns:
        ``{"mean": [dims], "std": [dims], "min": float, "max": float}`` (rounded to 6 decimals,
        computed in float64).
    """
    x = np.concatenate([a.reshape(len(a), -1) for a in arrays]).astype(np.float64)
    return {"mean": np.round(x.mean(0), 6).tolist(), "std": np.round(x.std(0), 6).tolist(),
            "min": float(x.min()), "max": float(x.max())}


def write_dataset(out: Path, manifest: dict, records: Iterable[schema.ClipRecord]) -> dict:
    """Write shards per split and then the manifest, atomically.

    ``records`` yields :class:`~tf_talkface.data.records.ClipRecord` objects. Any manifest of a
    previous build is removed first, and stale shards after, so no manifest ever lists a missing
    or partial shard. Returns the manifest (with ``shards`` and each clip's ``shard`` filled in).
    """
    out = Path(out)
    (out / MANIFEST).unlink(missing_ok=True)
    old = {p.name for p in out.glob(f"*{schema.SHARD_SUFFIX}")}
    run = time.strftime("%Y%m%d%H%M%S")
    writers = {s: schema.ShardWriter(out, f"{s}-{run}") for s in SPLITS}
    clip_shard = {}
    try:
        for rec in records:
            clip_shard[rec.clip_id] = writers[rec.split].write(schema.serialize_clip(rec))
    except BaseException:
        for w in writers.values():
            w.__exit__(RuntimeError, None, None)
        raise
    shards = []
    for s, w in writers.items():
        for name, n, size in w.close():
            shards.append({"file": name, "split": s, "n_clips": n, "bytes": size})
    for c in manifest["clips"]:
        c["shard"] = clip_shard.get(c["clip_id"])
    manifest["shards"] = shards
    write_json_atomic(out / MANIFEST, manifest)
    for name in old - {s["file"] for s in shards}:
        (out / name).unlink(missing_ok=True)
    return manifest
