"""A dataset folder's ``manifest.json``: reading, validating, atomic writing.

A dataset folder (``tfrecords/NAME/``) holds ``manifest.json`` and the shard files it lists.
The manifest is written last and atomically, and removed first when a dataset is rebuilt, so a
manifest that exists always points to complete shards.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset folder is missing, incomplete or inconsistent (the message names the path)."""


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN/Inf float (Python or NumPy) replaced by ``None`` and NumPy scalars
    and arrays turned into Python values: bare ``NaN`` is not JSON (RFC 8259)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalar / array
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write JSON to ``path`` via a temp file in the same folder + ``os.replace``; NaN/Inf are
    written as ``null`` (:func:`json_safe`), the file's mode follows the umask."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(json_safe(obj), f, indent=indent, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; others may read datasets (umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_manifest(dataset_dir: str | os.PathLike) -> dict:
    """Read and check a dataset's manifest.

    Raises:
        DatasetError: no folder, no/corrupt manifest, unknown format version, or a listed shard
            that does not exist.
    """
    d = Path(dataset_dir)
    p = d / MANIFEST
    if not d.is_dir():
        raise DatasetError(f"{d}: dataset folder does not exist (run python -m tf_talkface.prepare)")
    if not p.is_file():
        raise DatasetError(f"{p}: no manifest; the dataset is incomplete (was prepare interrupted?)")
    try:
        with open(p) as f:
            m = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: corrupt manifest ({e})") from e
    if m.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{p}: format_version {m.get('format_version')!r}, this tf_talkface "
                           f"reads {FORMAT_VERSION}")
    missing = [s["file"] for s in m.get("shards", []) if not (d / s["file"]).is_file()]
    if missing:
        raise DatasetError(f"{d}: shards listed in the manifest are missing: {', '.join(missing)}")
    return m


def shard_paths(dataset_dir: str | os.PathLike, manifest: dict, split: str) -> list[str]:
    """Paths of the shards of one split (``train``/``val``/``test``), sorted.

    Raises:
        DatasetError: unknown split name.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    d = Path(dataset_dir)
    return sorted(str(d / s["file"]) for s in manifest["shards"] if s["split"] == split)


def find_corrupt_shards(dataset_dir: str | os.PathLike, manifest: dict) -> list[str]:
    """Read every shard of a dataset once and return the names of those that fail TFRecord's
    CRC/length checks (used to name the file behind a ``DataLossError``)."""
    import tensorflow as tf

    bad = []
    for s in manifest.get("shards", []):
        try:
            for _ in tf.data.TFRecordDataset(str(Path(dataset_dir) / s["file"])):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
            bad.append(s["file"])
    return bad
