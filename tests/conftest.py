"""Shared fixtures. Tests needing the real data skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from tf_talkface.resources import DATA_ENV, shared_data_dir


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Every test starts without the user's model override and distribution settings:
    ``TF_TALKFACE_MODEL`` (would replace the bundled default model) and ``TF_CONFIG`` (would
    make training multi-worker)."""
    monkeypatch.delenv("TF_TALKFACE_MODEL", raising=False)
    monkeypatch.delenv("TF_CONFIG", raising=False)


@pytest.fixture(scope="session")
def data_dir():
    """The real-data folder (``../shared/data`` or ``$TF_TALKFACE_DATA``); skips when absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip(f"real data not found: set {DATA_ENV} or place it at ../shared/data")
    return d


CHECKPOINTS = Path(__file__).resolve().parents[1] / "saved_models" / "checkpoints"


@pytest.fixture(scope="session")
def checkpoint():
    """``checkpoint(name)`` -> ``saved_models/checkpoints/NAME.json`` (a committed trained
    model); the test skips when the checkout lacks it."""
    def get(name: str) -> Path:
        f = CHECKPOINTS / f"{name}.json"
        if not f.is_file():
            pytest.skip(f"trained checkpoint {f} not in this checkout")
        return f

    return get


SMALL_CLIPS = ["bbaf2n", "bbaf3s", "bbaf4p", "bbal6n", "bbal8p", "bbal9a", "bbas1s", "bbas2p"]


@pytest.fixture(scope="session")
def landmark_cache(tmp_path_factory):
    """One landmark cache for the whole test session (the tests' own, never the user's)."""
    return tmp_path_factory.mktemp("landmark_cache")


@pytest.fixture(scope="session")
def small_datasets(data_dir, tmp_path_factory, landmark_cache):
    """Both recipes prepared from 8 real GRID s1 clips (4 train / 2 val / 2 test).

    Returns ``{"eskimez2018": Path, "eskimez2020": Path}``."""
    from tf_talkface.prepare import prepare

    root = tmp_path_factory.mktemp("small")
    videos = root / "videos" / "s1"
    videos.mkdir(parents=True)
    for c in SMALL_CLIPS:
        (videos / f"{c}.mp4").symlink_to(data_dir / "grid" / "s1" / f"{c}.mp4")
    out = {}
    for recipe in ("eskimez2018", "eskimez2020"):
        out[recipe] = root / recipe
        prepare([videos], out[recipe], recipe, workers=2, split="0.5,0.25,0.25", seed=0,
                cache_dir=str(landmark_cache), progress=False)
    return out
