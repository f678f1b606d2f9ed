"""Where things live: the shared real-data folder, the dlib predictor, the ffmpeg binary.

Nothing here downloads anything; every resource comes from an installed package or a local path.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

DATA_ENV = "TF_TALKFACE_DATA"


def shared_data_dir() -> Path | None:
    """The real-data folder: ``$TF_TALKFACE_DATA`` if set, else ``../shared/data`` beside the
    project checkout; ``None`` if neither exists."""
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    p = Path(__file__).resolve().parents[2] / "shared" / "data"
    return p if p.is_dir() else None


def shape_predictor_path() -> Path:
    """Path of dlib's 68-point shape predictor shipped by the ``face-recognition-models`` package.

    Located with ``importlib`` rather than by importing the package, whose ``__init__`` needs
    ``pkg_resources`` (gone from recent setuptools).

    Raises:
        FileNotFoundError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "dlib's 68-point predictor comes from the 'face-recognition-models' package, which is "
            "not installed: pip install face-recognition-models")
    path = Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the face-recognition-models package")
    return path


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped by ``imageio-ffmpeg`` (no system ffmpeg needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def reference_file(*parts: str) -> Path | None:
    """A file under ``<shared data>/reference/`` (e.g. ``("eskimez2018", "mean_shape.npy")``),
    or ``None`` when the data folder or the file is absent."""
    root = shared_data_dir()
    if root is None:
        return None
    p = root.joinpath("reference", *parts)
    return p if p.is_file() else None


def check_input_file(path: Path, error: type[Exception]) -> None:
    """Raise ``error`` naming ``path`` when it is missing, not a regular file, or empty."""
    if not path.exists():
        raise error(f"{path}: file not found")
    if not path.is_file():
        raise error(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise error(f"{path}: file is empty (0 bytes)")
