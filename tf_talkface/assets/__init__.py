"""Small example inputs shipped with the package (see ``README.md`` in this folder for the
sources and licences): a GRID sentence and a public-domain portrait, so the talking photo runs
right after ``pip install``::

    python -m tf_talkface.generate -i example --image example -o out/

:func:`resolve` turns the word ``example`` into these files; any other value is returned as a
path unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ASSETS", "EXAMPLE_SPEECH", "EXAMPLE_PHOTO", "EXAMPLE", "resolve"]

ASSETS = Path(__file__).resolve().parent
EXAMPLE_SPEECH = ASSETS / "grid_s1_bbaf3s.flac"
"""GRID corpus speaker s1, sentence bbaf3s ("bin blue at f three soon"), 2.98 s, 16 kHz mono
FLAC (CC BY 4.0)."""
EXAMPLE_PHOTO = ASSETS / "obama_portrait.jpg"
"""Official White House portrait of Barack Obama, 512x640 JPEG (public domain)."""
EXAMPLE = "example"
"""The shortcut word accepted by ``-i`` and ``--image``."""


def resolve(value: str | os.PathLike | None, kind: str) -> str | os.PathLike | None:
    """``"example"`` -> the bundled example of ``kind`` (``"speech"`` or ``"photo"``); any
    other value (a real path) unchanged. A file or folder named ``example`` in the working
    directory wins over the shortcut."""
    if value is None or str(value) != EXAMPLE or Path(value).exists():
        return value
    if kind == "speech":
        return EXAMPLE_SPEECH
    if kind == "photo":
        return EXAMPLE_PHOTO
    raise ValueError(f"kind must be 'speech' or 'photo', got {kind!r}")
