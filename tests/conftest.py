"""Shared fixtures. Tests needing the real data skip with a reason when it is absent."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from tf_talkface.resources import DATA_ENV, shared_data_dir


@pytest.fixture(scope="session")
def data_dir():
    """The real-data folder (``../shared/data`` or ``$TF_TALKFACE_DATA``); skips when absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip(f"real data not found: set {DATA_ENV} or place it at ../shared/data")
    return d
