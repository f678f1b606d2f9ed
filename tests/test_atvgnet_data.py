"""ATVGnet's data layer (issue 14): MFCC twins, the crop alignment and its inverse, normalised
landmarks, ``prepare --recipe atvgnet`` on real GRID clips, and the AT-net / VG-net samplers."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from tf_talkface.audio import mfcc as M
from tf_talkface.face import align as A

GOOD = ["bbaf2n", "bbaf3s", "bbal9a"]


@pytest.fixture(scope="module")
def grid_audio(data_dir):
    from tf_talkface.audio.io import load_audio

    return load_audio(data_dir / "grid" / "s1" / "bbaf2n.mp4", 16000)


# ---------------------------------------------------------------------------- MFCC


def test_mfcc_twin_equals_the_library_on_real_audio(grid_audio):
    import python_speech_features as psf

    ref = M.mfcc(grid_audio)
    assert ref.shape == (M.num_rows(len(grid_audio)), 12) and ref.dtype == np.float32
    full = psf.mfcc(grid_audio.astype(np.float64), 16000, winstep=0.01)
    np.testing.assert_array_equal(ref, full[:, 1:].astype(np.float32))
    np.testing.assert_allclose(M.mfcc_tf(grid_audio).numpy(), ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(M.mfcc_tf(grid_audio, keep_energy=True).numpy(), full,
                               rtol=0, atol=1e-4)  # column 0: log frame energy
    padded = M.mfcc_padded(grid_audio)
    np.testing.assert_allclose(M.mfcc_padded_tf(grid_audio).numpy(), padded, rtol=0, atol=1e-4)
    batch = np.stack([grid_audio, grid_audio[::-1]])           # leading batch axes work too
    np.testing.assert_allclose(M.mfcc_tf(batch).numpy()[1], M.mfcc(grid_audio[::-1]),
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["noise", "silence", "short", "400", "401", "560", "561", "quiet"])
def test_mfcc_twin_edge_cases(kind):
    rng = np.random.default_rng(0)
    sig = {"noise": rng.uniform(-1, 1, 16000), "silence": np.zeros(4000),
           "short": rng.normal(0, 0.1, 250), "400": rng.normal(0, 0.1, 400),
           "401": rng.normal(0, 0.1, 401), "560": rng.normal(0, 0.1, 560),
           "561": rng.normal(0, 0.1, 561),
           "quiet": rng.normal(0, 1e-4, 8000)}[kind].astype(np.float32)
    ref = M.mfcc(sig)
    assert len(ref) == M.num_rows(len(sig))
    assert len(ref) == {"short": 1, "400": 1, "401": 2, "560": 2, "561": 3}.get(kind, len(ref))
    np.testing.assert_allclose(M.mfcc_tf(sig).numpy(), ref, rtol=0, atol=1e-4)
    if kind == "silence":  # the library's eps floor: log(eps) in every band, flat cepstrum
        assert np.abs(ref).max() < 1e-4


def test_mfcc_window_count_and_centre_rule(grid_audio):
    n = 40
    sig = grid_audio[:n * 640]
    padded = M.mfcc_padded(sig)
    assert padded.shape == (4 * n + 23, 12)                    # framesig's count, padded signal
    win = M.mfcc_windows(padded, n)
    assert win.shape == (n, 28, 12) and win.dtype == np.float32
    for k in (0, 1, n // 2, n - 2):
        np.testing.assert_array_equal(win[k], padded[4 * k:4 * k + 28])
    # the original demo: ind = 3 ... rows // 4 - 4 (inclusive), rows (ind - 3) * 4 : (ind + 4) * 4
    demo = [padded[(i - 3) * 4:(i + 4) * 4] for i in range(3, len(padded) // 4 - 4 + 1)]
    assert len(demo) == n - 1                                  # it drops the last frame
    np.testing.assert_array_equal(np.stack(demo), win[:n - 1])
    # our last window repeats the last row: the same as padding with more zeros
    longer = M.mfcc(np.concatenate([np.zeros(1920), sig, np.zeros(1920 + 640)]))
    np.testing.assert_array_equal(win[n - 1], longer[4 * (n - 1):4 * (n - 1) + 28])
    # window k is centred on video frame k: its rows' sample centres, minus the padding
    centres = (M.STEP * (4 * np.arange(n)[:, None] + np.arange(28)) + M.WIN / 2 - M.PAD_SAMPLES)
    mid = centres.mean(axis=1) / 16000
    np.testing.assert_allclose(mid - (np.arange(n) * 0.04 + 0.02), 0.0075, atol=1e-9)
    # TF twin, and the unpadded (original training) indexing
    np.testing.assert_array_equal(M.mfcc_windows_tf(padded, n).numpy(), win)
    raw = M.mfcc(sig)
    unp = M.mfcc_windows(raw, n, pad=False)
    np.testing.assert_array_equal(unp[5], raw[8:36])
    np.testing.assert_array_equal(unp[0, :12], np.repeat(raw[:1], 12, axis=0))
    np.testing.assert_array_equal(M.mfcc_windows_tf(raw, n, pad=False).numpy(), unp)


# ---------------------------------------------------------------------------- alignment


def test_similarity_fit_equals_skimage():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, (18, 2))
    ang, s, t = 0.3, 0.7, np.array([12.0, -40.0])
    rot = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ rot.T + t + rng.normal(0, 2, src.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SimilarityTransform()
        sk.estimate(src, dst)
    np.testing.assert_allclose(A.similarity_fit(src, dst), sk.params[:2], atol=1e-9)


def test_atvgnet_template(data_dir):
    from tf_talkface.resources import reference_file

    t = A.ATVGNET_TEMPLATE
    assert t.shape == (68, 2) and not t.flags.writeable
    ms = np.load(reference_file("eskimez2018", "mean_shape.npy"))
    np.testing.assert_allclose(t, A.place_template(ms, 128, 46, 95), atol=0.005)
    eyes = np.stack([t[36:42].mean(0), t[42:48].mean(0)])
    np.testing.assert_allclose(eyes[:, 1], 46, atol=0.01)                 # level, y = 46
    np.testing.assert_allclose(eyes[:, 0].mean(), 64, atol=0.01)
    np.testing.assert_allclose(t[48:68, 1].mean(), 95, atol=0.01)         # mouth centre
    assert t.min() > 0 and t.max() < 127.5                                 # jaw inside the crop


def test_normalised_landmarks_inverse_round_trip():
    t = A.ATVGNET_TEMPLATE
    v = A.crop_to_normalised(t)
    assert v.shape == (136,) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v), 5.0, rtol=1e-6)       # unit norm x 5
    np.testing.assert_allclose(v.reshape(68, 2).mean(0), 0, atol=1e-6)
    assert -1 < v.min() and v.max() < 1
    pts = t + np.random.default_rng(2).normal(0, 3, (10, 68, 2))
    back = A.normalised_to_crop(A.crop_to_normalised(pts))
    np.testing.assert_allclose(back, pts, atol=1e-4)                     # float32 in between
    np.testing.assert_allclose(A.normalised_to_crop(A.crop_to_normalised(pts, t * 2), t * 2),
                               pts, atol=1e-4)


def test_transform_helpers_and_smoothing():
    rng = np.random.default_rng(3)
    base = A.similarity_matrix([0.5, 0.1, 10.0, -5.0])
    p = rng.uniform(0, 300, (68, 2))
    np.testing.assert_allclose(A.transform_points(A.transform_points(p, base),
                                                  A.invert_transform(base)), p, atol=1e-9)
    seq = np.stack([A.similarity_matrix([0.5 + rng.normal(0, 0.01), 0.1 + rng.normal(0, 0.01),
                                         10 + rng.normal(0, 1), -5 + rng.normal(0, 1)])
                    for _ in range(50)])
    sm = A.smooth_transforms(seq, 5)
    assert sm.shape == (50, 2, 3)
    np.testing.assert_allclose(sm[:, 0, 0], sm[:, 1, 1])                # still similarities
    np.testing.assert_allclose(sm[:, 0, 1], -sm[:, 1, 0])
    jitter = lambda s: np.abs(np.diff(A.transform_points(p, s), axis=0)).mean()  # noqa: E731
    assert jitter(sm) < 0.5 * jitter(seq)
    np.testing.assert_allclose(A.smooth_transforms(np.stack([base] * 7), 5), np.stack([base] * 7))
    np.testing.assert_allclose(A.smooth_transforms(seq, 1), seq)
    # per-frame stacks: (T, 2, 3) applied frame by frame
    pts = rng.uniform(0, 100, (50, 68, 2))
    np.testing.assert_allclose(A.transform_points(pts, seq)[7], A.transform_points(pts[7], seq[7]))


# ---------------------------------------------------------------------------- prepare


@pytest.fixture(scope="module")
def atv_dataset(data_dir, tmp_path_factory, landmark_cache):
    """3 real GRID s1 clips + 1 corrupt file, ``prepare --recipe atvgnet`` (1 train / 1 val /
    1 test)."""
    from tf_talkface.prepare import prepare

    root = tmp_path_factory.mktemp("atv")
    vids = root / "videos" / "s1"
    vids.mkdir(parents=True)
    for c in GOOD:
        (vids / f"{c}.mp4").symlink_to(data_dir / "grid" / "s1" / f"{c}.mp4")
    (vids / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(40_000))
    out = root / "atv"
    m = prepare([vids], out, "atvgnet", workers=1, split="0.34,0.33,0.33", seed=0,
                cache_dir=str(landmark_cache), progress=False)
    return out, m, vids


def _clips(out, m):
    from tf_talkface.data.manifest import shard_paths
    from tf_talkface.data.records import RecordSpec, iter_clips

    spec = RecordSpec.from_manifest(m)
    return {c["clip_id"]: c for s in ("train", "val", "test")
            for c in iter_clips(shard_paths(out, m, s), spec)}


def test_prepare_atvgnet_records(atv_dataset):
    from tf_talkface.data.manifest import load_manifest

    out, m, vids = atv_dataset
    assert load_manifest(out)["recipe"]["name"] == "atvgnet"
    assert m["counts"] == {"train": 1, "val": 1, "test": 1, "skipped": 1, "frames": 225}
    assert m["skipped"][0]["source"] == "s1/corrupt.mp4" and m["skipped"][0]["reason"]
    s = m["schema"]
    assert (s["image_size"], s["n_pca"], s["audio_sample_rate"], s["hop"], s["mfcc_dim"]) == \
        (128, 6, 16000, 640, 12)
    assert not list(out.glob(".work*")) and (out / "basis.json").is_file()
    clips = _clips(out, m)
    c = clips["s1/bbaf2n"]
    n = int(c["num_frames"])
    assert n == 75 and c["image_jpeg"].shape == (n,)
    img = cv2.imdecode(np.frombuffer(c["image_jpeg"][0], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (128, 128, 3)
    assert c["crop_matrix"].shape == (n, 2, 3) and c["landmarks"].shape == (n, 136)
    assert c["pca"].shape == (n, 6) and c["landmarks_raw"].shape == (n, 136)
    assert c["audio"].shape == (n * 640,) and c["audio_sample_rate"] == 16000
    assert -1.5 < c["landmarks"].min() and c["landmarks"].max() < 1.5
    # the stored MFCC is the padded utterance's, recomputable from the stored audio
    assert c["mfcc"].shape == (4 * n + 23, 12)
    np.testing.assert_allclose(c["mfcc"], M.mfcc_padded(c["audio"]), atol=1e-5)
    # landmarks = the frame's dlib points mapped by the stored matrix, normalised (no 2nd dlib)
    raw = c["landmarks_raw"].reshape(n, 68, 2)
    mapped = A.transform_points(raw, c["crop_matrix"].astype(np.float64))
    np.testing.assert_allclose(A.crop_to_normalised(mapped), c["landmarks"], atol=1e-4)
    eyes = mapped[:, 36:48].reshape(n, 2, 6, 2).mean(axis=2)
    assert np.abs(eyes[..., 1] - 46).max() < 4 and np.abs(mapped[:, 48:68, 1].mean(1) - 95).max() < 8


def test_prepare_atvgnet_pca_on_train_only(atv_dataset):
    from tf_talkface.face.pca import PCABasis, fit_pca

    out, m, _ = atv_dataset
    clips = _clips(out, m)
    basis = PCABasis.load(out)
    train = [c for c in clips.values() if c["split"] == "train"]
    assert len(train) == 1
    ref = fit_pca(train[0]["landmarks"], 6)
    np.testing.assert_allclose(basis.mean, ref.mean, atol=1e-6)
    np.testing.assert_allclose(np.abs(basis.components @ ref.components.T), np.eye(6), atol=1e-4)
    everything = np.concatenate([c["landmarks"] for c in clips.values()])
    assert np.abs(basis.mean - everything.mean(0)).max() > 1e-3   # not fitted on all clips
    for c in clips.values():
        np.testing.assert_allclose(c["pca"], basis.project(c["landmarks"]), atol=1e-5)
    assert m["normalisation"]["n_pca"] == 6 and "train" in m["normalisation"]["basis_source"]


def test_crop_paste_back_round_trip(atv_dataset):
    from tf_talkface.animate.compose import paste_back
    from tf_talkface.face.landmarks import iter_frames

    out, m, vids = atv_dataset
    c = _clips(out, m)["s1/bbaf3s"]
    k = 40
    frame = [f.copy() for _, f in zip(range(k + 1), iter_frames(vids / "bbaf3s.mp4", "rgb24"))][k]
    t = c["crop_matrix"][k].astype(np.float64)
    crop = A.warp_crop(frame, t, 128)
    stored = cv2.imdecode(np.frombuffer(c["image_jpeg"][k], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.abs(crop.astype(int) - stored).mean() < 3               # JPEG q90 only
    back = paste_back(frame, stored, t)
    raw = c["landmarks_raw"][k].reshape(68, 2)
    x, y, w, h = cv2.boundingRect(np.round(raw).astype(np.int32))
    err = np.abs(back[y:y + h, x:x + w].astype(int) - frame[y:y + h, x:x + w]).mean()
    assert err < 6                     # down to 128 px and back up, JPEG in between
    shifted = paste_back(frame, np.roll(stored, 4, axis=1), t)       # a misplaced crop shows
    assert np.abs(shifted[y:y + h, x:x + w].astype(int) - frame[y:y + h, x:x + w]).mean() > err + 2
    np.testing.assert_allclose(A.transform_points(A.transform_points(raw, t), A.invert_transform(t)),
                               raw, atol=1e-3)


# ---------------------------------------------------------------------------- tf.data samplers


def test_atnet_batches(atv_dataset):
    from tf_talkface.data.pixels import atnet_dataset

    out, m, _ = atv_dataset
    clip = _clips(out, m)["s1/bbal9a"]                       # the training clip
    ds = atnet_dataset(out, "train", batch_size=3, frames=16, seed=0, samples_per_clip=3)
    x, y = next(iter(ds))
    assert set(x) == {"example_pca", "mfcc"}
    assert x["example_pca"].shape == (3, 6) and x["mfcc"].shape == (3, 16, 28, 12)
    assert y.shape == (3, 16, 6)
    assert all(v.dtype.name == "float32" for v in (x["example_pca"], x["mfcc"], y))
    pca = clip["pca"]
    win = M.mfcc_windows(clip["mfcc"], 75)
    for b in range(3):
        r = int(np.argmin(np.abs(pca - x["example_pca"][b].numpy()).sum(1)))
        np.testing.assert_array_equal(pca[r], x["example_pca"][b])
        np.testing.assert_array_equal(pca[r + 1:r + 17], y[b])       # targets r+1 ... r+16
        np.testing.assert_array_equal(win[r + 1:r + 17], x["mfcc"][b])
    ev = atnet_dataset(out, "test", batch_size=2, training=False, deterministic=True, seed=5,
                       samples_per_clip=2)
    a = [e[1].numpy() for e in ev]
    b = [e[1].numpy() for e in ev]
    assert len(a) == 1 and a[0].shape == (2, 16, 6)
    np.testing.assert_array_equal(a[0], b[0])                        # same samples every pass


@pytest.mark.parametrize("size,value_range", [(None, (-1.0, 1.0)), (64, (0.0, 1.0))])
def test_vgnet_batches(atv_dataset, size, value_range):
    from tf_talkface.data.pixels import vgnet_dataset

    out, m, _ = atv_dataset
    clip = _clips(out, m)["s1/bbal9a"]
    ds = vgnet_dataset(out, "train", batch_size=2, frames=16, image_size=size,
                       value_range=value_range, seed=0, samples_per_clip=2)
    x, y = next(iter(ds))
    h = size or 128
    assert set(x) == {"example_image", "example_landmarks", "landmarks"}
    assert x["example_image"].shape == (2, h, h, 3) and y.shape == (2, 16, h, h, 3)
    assert x["example_landmarks"].shape == (2, 136) and x["landmarks"].shape == (2, 16, 136)
    for v in (*x.values(), y):
        assert v.dtype.name == "float32"
    lo, hi = value_range
    for v in (x["example_image"], y):
        v = v.numpy()
        assert lo <= v.min() < lo + 0.3 and hi - 0.3 < v.max() <= hi
    lms = clip["landmarks"]
    for b in range(2):
        s = int(np.argmin(np.abs(lms - x["landmarks"][b, 0].numpy()).sum(1)))
        np.testing.assert_array_equal(lms[s:s + 16], x["landmarks"][b])
        e = int(np.argmin(np.abs(lms - x["example_landmarks"][b].numpy()).sum(1)))
        if size is None:   # the target frames are the stored crops of those frames
            ref = cv2.imdecode(np.frombuffer(clip["image_jpeg"][s + 3], np.uint8),
                               cv2.IMREAD_COLOR)[:, :, ::-1] / 127.5 - 1
            np.testing.assert_allclose(y[b, 3].numpy(), ref, atol=1e-6)
            ex = cv2.imdecode(np.frombuffer(clip["image_jpeg"][e], np.uint8),
                              cv2.IMREAD_COLOR)[:, :, ::-1] / 127.5 - 1
            np.testing.assert_allclose(x["example_image"][b].numpy(), ex, atol=1e-6)


def test_mfcc_tf_in_a_saved_model(grid_audio, tmp_path):
    """The TF twin traces with a dynamic length and survives a SavedModel round trip."""
    import tensorflow as tf

    class Front(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def windows(self, wav):
            n = tf.shape(wav)[0] // 640
            return M.mfcc_windows_tf(M.mfcc_padded_tf(wav), n)

    tf.saved_model.save(Front(), str(tmp_path / "front"))
    loaded = tf.saved_model.load(str(tmp_path / "front"))
    sig = grid_audio[:50 * 640]
    got = loaded.windows(tf.constant(sig)).numpy()
    np.testing.assert_allclose(got, M.mfcc_windows(M.mfcc_padded(sig), 50), rtol=0, atol=1e-4)
