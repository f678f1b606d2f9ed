"""What every dataset builder shares: splits, feature statistics, the shards-then-manifest writer.

Both builders use these: :mod:`tf_talkface.prepare` (videos -> clips) and
:mod:`tf_talkface.data.hdf5` (the original projects' HDF5 files). Neither imports the other for
them.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from tf_talkface.data.manifest import MANIFEST, SPLITS, write_json_atomic
from tf_talkface.data import records as schema  # attributes looked up at call time (tests patch them)

__all__ = ["PrepareError", "parse_split", "assign_splits", "feature_stats", "write_dataset",
           "begin_dataset", "finish_dataset"]


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


def begin_dataset(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """The folder a builder writes the dataset ``out`` into.

    A new (or empty, or unfinished: no ``manifest.json``) ``out`` is built in place, so an
    interrupted build resumes from its work files. An existing dataset (``out/manifest.json``) is
    refused unless ``overwrite``; then the new one is built beside it in ``.NAME.new/`` and
    :func:`finish_dataset` swaps it in at the end, so the old dataset stays whole and usable until
    the new one is complete (a failed rebuild, e.g. a full disk, leaves it untouched).

    Raises:
        PrepareError: ``out`` holds a dataset and ``overwrite`` is false, or ``out`` is a file or
            a folder with other content.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out}: --out must be a dataset folder; this is an existing file")
    if (out / MANIFEST).is_file():
        if not overwrite:
            raise PrepareError(f"{out} already holds a dataset (manifest.json); pass --overwrite to "
                               "replace it (the old one stays usable until the new one is "
                               "complete) or choose another --out")
        stage = out.parent / f".{out.name}.new"
        stage.mkdir(exist_ok=True)
        return stage
    if out.is_dir():
        ours = (schema.SHARD_SUFFIX, ".tmp")
        foreign = [p.name for p in out.iterdir() if not (p.name.startswith(".") or p.name == "basis.json"
                                                         or p.name.endswith(ours))]
        if foreign and not overwrite:
            raise PrepareError(f"{out} is not empty and not a dataset (holds {', '.join(sorted(foreign)[:3])}"
                               f"{', ...' if len(foreign) > 3 else ''}); choose an empty or new "
                               "--out, or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def finish_dataset(build: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Put a dataset built by :func:`begin_dataset`'s folder ``build`` at ``out``: nothing to do
    when it was built in place; otherwise the old ``out`` is renamed aside, the new one renamed
    in, and the old one deleted (restored if the second rename fails)."""
    build, out = Path(build), Path(out)
    if build == out:
        return out
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    try:
        os.replace(build, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out
