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

__all__ = ["AUDIO_EXTENSIONS", "InputError", "find_inputs", "save_npy", "load_npy"]

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
    sorted) with one of ``extensions`` (case-insensitive), stems keeping the sub-folders.

    Raises:
        InputError: the path does not exist, or a folder holds no matching file.
    """
    p = Path(path)
    if p.is_file():
        return [(p, Path(p.stem))]
    if not p.is_dir():
        raise InputError(f"{p}: no such file or folder")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
    if not files:
        raise InputError(f"{p}: no input files ({', '.join(extensions)}) in this folder")
    return [(f, f.relative_to(p).with_suffix("")) for f in files]


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
