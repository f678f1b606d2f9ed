"""Atomic file output: write to a temp file in the destination folder, rename when complete.

Every artefact of the library (shards, manifests, npy, wav, png, mp4, SavedModel folders) is
either complete or absent, so an interrupted run never leaves a half-written file that a later
run would take for finished work.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_output"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temp file name next to ``path``; on success rename it to ``path``, on any error
    (including KeyboardInterrupt) remove it and leave ``path`` as it was.

    Args:
        path: the final file; its folder is created.
        suffix: the temp name's ending (default ``".tmp" + path.suffix``, so tools that pick the
            format from the extension — ffmpeg, OpenCV, soundfile — still see it).

    Yields:
        str: the temp file path (created empty; write to it by name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
