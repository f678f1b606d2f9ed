"""Input discovery and landmark files: the ``NAME.npy`` (+ ``NAME.wav``) pairs every tool shares.

``generate`` writes them (``--save-npy``) and reads them back (``--load-npy``), ``stream`` writes
its output with :func:`save_npy`, the replication toolkit reads predictions with :func:`load_npy`,
and ``generate`` / the TF Serving client find their inputs with :func:`find_inputs`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tf_talkface.atomic import atomic_output

__all__ = ["AUDIO_EXTENSIONS", "InputError", "find_inputs", "output_path", "save_npy", "load_npy"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff",
                    ".aif", ".mp4", ".mpg", ".mpeg", ".mov", ".mkv", ".avi", ".webm")
"""File types picked up when an input is a folder (any file ffmpeg decodes works when named)."""


class InputError(ValueError):
    """An input that cannot be used (the message names the file and the problem).

    ``tf_talkface.generate.GenerateError`` is this class."""


def find_inputs(path: str | os.PathLike, extensions: tuple[str, ...] = AUDIO_EXTENSIONS
                ) -> list[tuple[Path, Path]]:
    """Input files and their output stems relative to the output folder.

    A file gives ``[(file, Path(stem))]``; a folder gives every file below it (recursively,
    sorted) with one of ``extensions`` (case-insensitive), stems keeping the sub-folders and every
    dot of the name (``take.1.wav`` -> ``take.1``).

    Raises:
        InputError: the path does not exist, a folder holds no matching file, or two files would
            write the same outputs (``a.wav`` and ``a.flac``; the message names both).
    """
    p = Path(path)
    if p.is_file():
        return [(p, Path(p.stem))]
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if not p.is_dir():
        raise InputError(f"{p}: not a regular file or a folder")
    try:
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
    except OSError as e:
        raise InputError(f"{e.filename or p}: cannot list the folder ({e.strerror or e})") from None
    if not files:
        raise InputError(f"{p}: no input files ({', '.join(extensions)}) in this folder")
    items = [(f, f.parent.relative_to(p) / f.stem) for f in files]  # the whole stem: take.1.wav -> take.1
    seen: dict[Path, Path] = {}
    for f, stem in items:
        if stem in seen:
            raise InputError(f"{seen[stem]} and {f} would write the same outputs {stem}.*; rename "
                             "one of them or animate them into different folders")
        seen[stem] = f
    return items


def output_path(base: str | os.PathLike, suffix: str) -> Path:
    """``base`` + ``suffix``, keeping every dot of the name (``take.1`` -> ``take.1.npy``;
    ``Path.with_suffix`` would give ``take.npy`` and two inputs would share their outputs)."""
    base = Path(base)
    return base.parent / (base.name + suffix)


def save_npy(path: str | os.PathLike, landmarks: np.ndarray) -> Path:
    """Write landmarks as float32 ``.npy`` atomically (temp file + rename).

    Args:
        path: destination (``.npy``); its folder must exist.
        landmarks: array of any shape, usually (frames, 68, D); stored as float32.

    Returns:
        ``Path(path)``.
    """
    path = Path(path)
    with atomic_output(path, ".tmp.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(landmarks, np.float32))
    return path


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Landmarks from a ``.npy`` file: (frames, 68, D) with D in {2, 3}, or flattened
    (frames, 68*D) point-major; returned as float32 (frames, 68, D).

    Raises:
        InputError: unreadable file or another shape (the message gives the shape).
    """
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e})") from None
    if a.ndim == 2 and a.shape[1] in (136, 204):
        a = a.reshape(len(a), 68, -1)
    if a.ndim != 3 or a.shape[1] != 68 or a.shape[2] not in (2, 3) or len(a) == 0:
        raise InputError(f"{path}: expected landmarks of shape (frames, 68, 2|3), got {a.shape}")
    return a.astype(np.float32)
