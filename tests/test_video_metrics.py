"""Frame metrics of generated video (video_metrics.py) on real GRID frames."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tf_talkface import video_metrics as vm


@pytest.fixture(scope="module")
def frames(data_dir):
    from tf_talkface.face.landmarks import iter_frames

    it = iter_frames(data_dir / "grid" / "s1" / "bbaf3s.mp4", pix_fmt="rgb24")
    return np.stack([f.copy() for f in itertools.islice(it, 0, 60, 15)])  # 4 frames, 0.6 s apart


def test_identical_frames_score_perfectly(frames):
    s = vm.score_clip(frames, frames).summary()
    assert s["ssim"] == pytest.approx(1.0)
    assert s["psnr_identical"] == 4 and np.isnan(s["psnr"])
    assert s["lmd"] == 0.0 and s["lmd_frames"] == 4 and s["no_face"] == 0
    assert 0.0 < s["cpbd"] <= 1.0


def test_degradations_are_ranked(frames):
    import cv2

    real = frames[0]
    blurred = cv2.GaussianBlur(real, (0, 0), 2.0)
    noisy = np.clip(real.astype(np.int16) + np.random.default_rng(0).integers(-40, 41, real.shape),
                    0, 255).astype(np.uint8)
    assert vm.ssim(real, blurred) < 0.99
    assert vm.psnr(real, noisy) < vm.psnr(real, blurred) < 60
    assert vm.cpbd(blurred) < vm.cpbd(real)


def test_cpbd_is_not_fooled_by_pixel_replication(frames):
    """A 2x nearest/area enlargement has 1-px steps that CPBD would call perfectly sharp (the
    bug that scored every 128-px crop 1.0 at 256 px); the frame itself and a cubic enlargement
    of a face crop must score well below 1."""
    import cv2

    crop = cv2.resize(frames[0][30:260, 70:300], (128, 128), interpolation=cv2.INTER_AREA)
    assert vm.cpbd(crop) < 0.9
    assert vm.cpbd(crop, size=256) < 0.9
    blurred = cv2.GaussianBlur(crop, (0, 0), 1.5)
    assert vm.cpbd(blurred, size=256) < vm.cpbd(crop, size=256)


def test_lmd_sees_a_different_mouth(frames):
    # Another moment of the same sentence: the mouth shape differs, the face box does not.
    a, b = frames[0], frames[2]
    pa = vm.mouth_points_pair(a, a)
    pb = vm.mouth_points_pair(a, b)
    assert pa is not None and pb is not None
    assert vm.mouth_lmd(*pa) == (0.0, 0.0)
    mean, total = vm.mouth_lmd(*pb)
    assert mean > 0.5 and total == pytest.approx(20 * mean)


def test_bad_input_is_named():
    a = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(vm.MetricsError, match="differ in size"):
        vm.ssim(a, np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(vm.MetricsError, match="uint8"):
        vm.psnr(a, a.astype(np.float32))
