"""Shared fixtures.

What may skip and what must fail (issue 12 C1):

- the real data (``../shared/data`` or ``$TF_TALKFACE_DATA``): tests needing it skip on a user's
  machine without it; in CI (``CI`` set, as ``.ci/run`` does) its absence fails them, and a
  ``$TF_TALKFACE_DATA`` naming a folder that does not exist is an error everywhere;
- committed artefacts (``saved_models/``: checkpoints, the bundled SavedModels) are part of the
  checkout: a missing or unloadable one fails, never skips (:func:`committed`).
"""
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


def in_ci() -> bool:
    """``CI`` is set to something true (``.ci/run`` exports ``CI=true``, as CI services do)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config):
    env = os.environ.get(DATA_ENV)
    if env and not Path(env).expanduser().is_dir():
        raise pytest.UsageError(f"${DATA_ENV}={env} is not a folder: fix or unset it (the tests "
                                "would otherwise skip everything that needs real data)")


def missing(reason: str) -> None:
    """A test's prerequisite is absent: skip on a user's machine, fail in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI must run every test: CI is set)", pytrace=False)
    pytest.skip(reason)


def committed(path: Path) -> Path:
    """A file or folder committed to the repository: fail (never skip) when it is missing."""
    if not path.exists():
        pytest.fail(f"{path} is committed to the repository but missing from this checkout",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def data_dir():
    """The real-data folder (``../shared/data`` or ``$TF_TALKFACE_DATA``); skips when absent on a
    user's machine, fails in CI."""
    d = shared_data_dir()
    if d is None:
        missing(f"real data not found: set {DATA_ENV} or place it at ../shared/data")
    return d


CHECKPOINTS = Path(__file__).resolve().parents[1] / "saved_models" / "checkpoints"


@pytest.fixture(scope="session")
def checkpoint():
    """``checkpoint(name)`` -> ``saved_models/checkpoints/NAME.json`` (a committed trained
    model); the test fails when the checkout lacks it or its weights."""
    def get(name: str) -> Path:
        f = committed(CHECKPOINTS / f"{name}.json")
        committed(CHECKPOINTS / f"{name}.weights.h5")
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
