"""Issue 11's training recipe: standardised targets (TargetScale), the LSTM's linear read-out
in every inference path, loss weights, mel-axis VTLP, CNN training windows, voice copies,
weight transfer between recipes, presets, and a short robust run on real clips."""
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import CHECKPOINTS, committed
from tf_talkface.models.layers import TargetScale
from tf_talkface.models.lstm import StackedLSTMInference, build_lstm


def _lstm(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    return build_lstm(input_dim=512, units=32, readout="linear",
                      target_mean=rng.uniform(0.3, 0.7, 136).tolist(),
                      target_std=rng.uniform(0.005, 0.02, 136).tolist())


def test_target_scale_layer():
    layer = TargetScale([1.0, 2.0], [0.5, 4.0])
    x = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    assert np.allclose(np.asarray(layer(x)), [[1.0, 6.0], [2.0, -2.0]])
    assert np.allclose(layer.numpy(x), np.asarray(layer(x)))
    with pytest.raises(ValueError, match="std > 0"):
        TargetScale([0.0], [0.0])


def test_linear_readout_fast_inference_equals_keras():
    net = _lstm()
    assert [l.name for l in net.layers][-2:] == ["readout", "target_scale"]
    assert net.get_layer("lstm4").units == 32  # the last LSTM no longer has 136 units
    x = np.random.default_rng(1).normal(size=(2, 40, 512)).astype(np.float32)
    fast = StackedLSTMInference(net)
    assert fast.output_dim == 136
    assert np.abs(np.asarray(fast(x)) - np.asarray(net(x, training=False))).max() < 1e-5
    h = np.random.default_rng(2).normal(size=(3, 32)).astype(np.float32)
    assert np.abs(fast.readout_numpy(h) - np.asarray(fast.readout(tf.constant(h)))).max() < 1e-6
    # outputs are no longer bounded to (0, 1) by a sigmoid cell
    assert build_lstm(input_dim=8, readout="lstm").layers[-1].units == 136


def test_linear_readout_streams_equal_offline(data_dir):
    from tf_talkface.audio.io import load_audio
    from tf_talkface.export import TrainedModel, python_path_predict
    from tf_talkface.stream import streamer_for

    m = TrainedModel(net=_lstm(), kind="lstm", train={"delay": 1, "context": 3, "model": "lstm"},
                     dataset={}, neutral_face=np.zeros((68, 2), np.float32))
    y = load_audio(data_dir / "speech" / "test1.flac", 44100)[:4 * 44100]
    off = python_path_predict(m, y)
    s = streamer_for(m)
    for chunk in (1764, 500, 44100):  # numpy live path (<= 4 frames) and the graph path
        s.reset()
        out = [s.push(y[i:i + chunk]) for i in range(0, len(y), chunk)] + [s.flush()]
        assert np.abs(np.concatenate(out) - off).max() < 1e-4, chunk


def test_dim_weighted_loss():
    from tf_talkface.models.noise_resilient import DimWeightedLoss

    yt = np.zeros((1, 2, 3), np.float32)
    yp = np.array([[[1, 2, 3], [0, 0, 0]]], np.float32)
    l1 = DimWeightedLoss("l1", [1, 1, 2])
    assert float(l1(yt, yp)) == pytest.approx((1 + 2 + 6) / 3 / 2)
    assert float(l1(yt, yp, sample_weight=np.array([[1, 0]], np.float32))) == pytest.approx(3.0)
    mse = DimWeightedLoss("mse", [1, 0, 0])
    assert float(mse(yt, yp)) == pytest.approx(1 / 3 / 2)


def test_velocity_term_penalises_a_face_that_does_not_move():
    """Hand check: truth 0, 1, 0 on one dim; a static prediction at 0.5 has error 0.5 on every
    frame (MSE 0.25 each) and misses the motion (differences 1, -1 against 0, 0): frames 1 and 2
    add velocity * 1 each. A prediction with the right motion but an offset pays no velocity term.
    Masked frames (sample weight 0) count for nothing."""
    from tf_talkface.models.noise_resilient import DimWeightedLoss

    yt = np.array([[[0.0], [1.0], [0.0]]], np.float32)
    still = np.full_like(yt, 0.5)
    loss = DimWeightedLoss("mse", [1.0], velocity=2.0)
    assert float(loss(yt, still)) == pytest.approx((0.25 * 3 + 2.0 * 2) / 3)
    assert float(loss(yt, yt + 0.5)) == pytest.approx(0.25)
    assert float(DimWeightedLoss("mse", [1.0])(yt, still)) == pytest.approx(0.25)
    w = np.array([[1, 1, 0]], np.float32)
    assert float(loss(yt, still, sample_weight=w)) == pytest.approx((0.25 * 2 + 2.0) / 2)
    with pytest.raises(ValueError, match="velocity"):
        loss(np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32))


def test_mel_warp():
    from tf_talkface.data.pipeline import mel_warp

    f = np.zeros((2, 128), np.float32)
    f[:, 20] = 1.0   # a peak in band 20 of the delta block
    f[:, 64 + 20] = 1.0
    assert np.allclose(mel_warp(f, 1.0, 64).numpy(), f)
    up = mel_warp(f, 1.2, 64).numpy()
    assert np.argmax(up[0, :64]) == 24 and np.argmax(up[0, 64:]) == 24  # 20 x 1.2
    assert np.argmax(mel_warp(f, 0.8, 64).numpy()[0, :64]) == 16


def test_crop_window_is_a_slice_of_the_whole_example(small_datasets):
    from tf_talkface.audio.level import LevelConfig
    from tf_talkface.data.pipeline import make_dataset

    d = small_datasets["eskimez2020"]
    level = LevelConfig("loudness")
    whole = next(iter(make_dataset(d, "train", "cnn", 1, shuffle=False, level=level)))
    crop = next(iter(make_dataset(d, "train", "cnn", 1, shuffle=False, level=level, crop_frames=20)))
    (xw, yw, _), (xc, yc, wc) = whole, crop
    assert yc.shape[1] == 20 and xc.shape[1] == 320 * 19 + 2240 and float(tf.reduce_sum(wc)) == 20
    yw, yc, xw, xc = yw.numpy()[0], yc.numpy()[0], xw.numpy()[0], xc.numpy()[0]
    s = next(s for s in range(len(yw) - 19) if np.allclose(yw[s:s + 20], yc))
    assert np.allclose(xw[320 * s: 320 * s + len(xc)], xc)


def test_standardised_model_initialised_from_a_paper_checkpoint_keeps_its_outputs(checkpoint, data_dir):
    from tf_talkface.audio.io import load_audio
    from tf_talkface.models.cnn import build_cnn, pad_and_scale
    from tf_talkface.train import load_init_weights

    src_json = checkpoint("cnn_nr2")
    src = build_cnn()
    src.load_weights(src_json.with_name("cnn_nr2.weights.h5"))
    std = [0.015, 0.012, 0.011, 0.008, 0.006, 0.005]
    net = build_cnn(target_mean=[0.0] * 6, target_std=std)
    done = load_init_weights(net, src_json.with_name("cnn_nr2.weights.h5"))
    assert "head" in done and "conv1" in done
    w = pad_and_scale(load_audio(data_dir / "speech" / "test1.flac", 8000)[:24000])[None]
    a, b = np.asarray(src(w)), np.asarray(net(w))
    assert np.abs(a - b).max() < 1e-6 * max(1.0, np.abs(a).max()) + 1e-7
    assert np.allclose(net.loss_dim_weights, 1 / np.asarray(std), rtol=1e-6)


def test_presets_resolve_and_refuse_nonsense():
    from tf_talkface.train import PRESETS, TrainConfig, TrainError

    r = TrainConfig(data="d", model="cnn", out="o", preset="robust").resolved()
    assert r.level == "loudness" and r.standardize and r.crop_frames == 32
    p = TrainConfig(data="d", model="lstm", out="o", preset="paper").resolved()
    assert p.readout == "lstm" and not p.standardize and p.lr == 1e-3
    # one setting overrides its preset
    assert TrainConfig(data="d", model="cnn", out="o", preset="robust", level="peak",
                       gain_aug_db=0.0).resolved().level == "peak"
    with pytest.raises(TrainError, match="gain-aug"):
        TrainConfig(data="d", model="cnn", out="o", preset="robust", level="peak").resolved().check()
    with pytest.raises(TrainError, match="preset"):
        TrainConfig(data="d", model="cnn", out="o", preset="fast").resolved()
    assert set(PRESETS["paper"]) == set(PRESETS["robust"])


def test_mouth_component_weights_follow_the_mouth_part_of_each_pca_axis():
    from tf_talkface.face.pca import PCABasis
    from tf_talkface.train import MOUTH_POINTS, pca_component_weights

    basis = PCABasis.load(committed(CHECKPOINTS / "cnn_nr_voices5.basis.json"))
    c = basis.components.astype(np.float64)
    std = np.sqrt(np.asarray(basis.explained_variance_ratio)) * 0.02
    w = pca_component_weights(c, std, 1.0)
    # mouth weight 1: every unit axis moves the landmarks by 1, so the weights are equal (PCA
    # units), i.e. the paper's raw-PCA L1, rescaled so that w * std averages 1
    assert np.allclose(w, w[0]) and np.isclose(np.mean(w * std), 1.0)
    w4 = pca_component_weights(c, std, 4.0)
    mouth = np.zeros(c.shape[1], bool)
    for p in MOUTH_POINTS:
        mouth[2 * p:2 * p + 2] = True
    share = (c[:, mouth] ** 2).sum(1)  # part of each unit axis on the mouth
    ratio = w4 / w
    assert np.array_equal(np.argsort(ratio), np.argsort(share))  # more mouth, more weight
    assert np.isclose(np.mean(w4 * std), 1.0)
    # the first component (the largest, mostly mouth opening) outweighs the smallest on
    # standardised values, unlike the standardised loss that weights them equally
    assert (w4 * std)[0] > 2 * (w4 * std)[-1]


def test_nr_model_uses_the_given_dim_weights():
    from tf_talkface.models.cnn import build_cnn
    from tf_talkface.models.noise_resilient import NoiseResilientModel

    net = build_cnn(target_mean=[0.0] * 6, target_std=[1.0] * 6)
    wave = tf.random.stateless_normal((1, 320 * 9 + 2240), (1, 2)) * 0.1
    y = tf.zeros((1, 10, 6))
    terms = {}
    for name, dims in (("default", None), ("first", [6.0, 0, 0, 0, 0, 0])):
        nr = NoiseResilientModel(net, w_feat=0.0, dim_weights=dims)
        terms[name] = nr.compute_terms(((wave, wave), y), training=False)
    pred = np.asarray(net(wave))[0]
    assert np.isclose(float(terms["default"]["l1_clean"]), np.abs(pred).mean(), rtol=1e-4)
    assert np.isclose(float(terms["first"]["l1_clean"]), np.abs(pred[:, 0]).mean(), rtol=1e-4)
    with pytest.raises(ValueError, match="dim_weights"):
        NoiseResilientModel(net, dim_weights=[1.0, 2.0])


def test_robust_runs_on_real_clips(small_datasets, tmp_path):
    from tf_talkface.export import load_trained, python_path_predict
    from tf_talkface.train import TrainConfig, train

    for recipe, model, extra in (("eskimez2018", "lstm", {"delay": 1, "context": 1, "units": 16}),
                                 ("eskimez2020", "cnn", {})):
        out = tmp_path / model
        res = train(TrainConfig(data=str(small_datasets[recipe]), model=model, out=str(out),
                                epochs=2, batch_size=2, preset="robust", **extra), verbose=0)
        cfg = json.loads((out / "config.json").read_text())["train"]
        assert cfg["preset"] == "robust" and cfg["standardize"] is True
        assert np.isfinite(res["test"]["model"]["mouth_rmse"])
        m = load_trained(out)
        assert m.net.get_layer("target_scale") is not None
        if model == "cnn":
            assert m.level.mode == "loudness"
            y = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
            assert np.abs(python_path_predict(m, y) - python_path_predict(m, 4 * y)).max() < 1e-3


def test_voice_copy_keeps_timing_and_moves_f0(data_dir):
    import pyworld

    from tf_talkface.audio.io import load_audio
    from tf_talkface.data.voices import draw_factors, perturb_voice

    y = load_audio(data_dir / "grid" / "s1" / "bbaf3s.mp4", 8000)

    def f0(x):
        f, _ = pyworld.harvest(np.asarray(x, np.float64), 8000)
        return np.median(f[f > 0])

    up = perturb_voice(y, 8000, 1.5, 1.1)
    assert up.shape == y.shape and up.dtype == np.float32
    assert f0(up) / f0(y) == pytest.approx(1.5, rel=0.1)
    assert np.sqrt(np.mean(up ** 2)) == pytest.approx(np.sqrt(np.mean(y ** 2)), rel=0.05)
    assert draw_factors(0, "s1/x", 1) == draw_factors(0, "s1/x", 1) != draw_factors(0, "s1/x", 2)
    lo, hi = draw_factors(3, "s1/y", 1)
    assert 0.6 <= lo <= 1.8 and 0.8 <= hi <= 1.25


def test_voice_copies_go_into_the_training_split_only(small_datasets, tmp_path):
    import shutil

    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.voices import add_voice_copies

    d = tmp_path / "ds"
    shutil.copytree(small_datasets["eskimez2020"], d)
    before = load_manifest(d)
    rec = add_voice_copies(d, copies=2, progress=False)
    after = load_manifest(d)
    assert rec["clips"] == 2 * before["counts"]["train"]
    assert after["counts"]["train"] == 3 * before["counts"]["train"]
    assert after["counts"]["val"] == before["counts"]["val"] and after["counts"]["test"] == before["counts"]["test"]
    add_voice_copies(d, copies=1, progress=False)  # re-running replaces the copies
    assert load_manifest(d)["counts"]["train"] == 2 * before["counts"]["train"]


def test_voice_copies_do_not_depend_on_the_number_of_workers(small_datasets, tmp_path):
    """WORLD in 2 processes writes the same shard, byte for byte, as in one (each copy's
    factors come from seed, clip id and copy number, and the order is kept)."""
    import shutil

    from tf_talkface.data.voices import add_voice_copies

    shards = []
    for workers in (1, 2):
        d = tmp_path / f"ds{workers}"
        shutil.copytree(small_datasets["eskimez2020"], d)
        rec = add_voice_copies(d, copies=2, seed=7, progress=False, workers=workers)
        assert rec["clips"] > 0
        shards.append((d / rec["shard"]).read_bytes())
    assert shards[0] == shards[1]


def test_voice_copies_of_a_2018_dataset_carry_recomputed_features(small_datasets, tmp_path):
    """2018 records keep the 44.1-kHz audio: the copy's log-mel deltas are those of its own
    (perturbed, 16-bit) audio, computed as prepare does, and its landmarks are the clip's."""
    import shutil

    from tf_talkface.audio.features import logmel_delta_features
    from tf_talkface.config import RecipeConfig
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.pipeline import read_clips
    from tf_talkface.data.voices import add_voice_copies

    d = tmp_path / "ds2018"
    shutil.copytree(small_datasets["eskimez2018"], d)
    n_train = load_manifest(d)["counts"]["train"]
    rec = add_voice_copies(d, copies=1, progress=False)
    m = load_manifest(d)
    assert rec["clips"] == n_train and m["counts"]["train"] == 2 * n_train
    clips = {c["clip_id"].numpy().decode(): c for c in read_clips(d, "train", m)}
    logmel = RecipeConfig.from_dict(m["recipe"]).logmel
    copies = [k for k in clips if k.endswith("#v1")]
    assert len(copies) == n_train
    for k in copies:
        orig, copy = clips[k[:-3]], clips[k]
        n = copy["landmarks"].shape[0]
        np.testing.assert_array_equal(copy["landmarks"].numpy(), orig["landmarks"].numpy())
        want = logmel_delta_features(copy["audio"].numpy(), logmel)[:n]
        np.testing.assert_allclose(copy["features"].numpy(), want, atol=1e-4)
        assert not np.allclose(copy["features"].numpy(), orig["features"].numpy(), atol=1e-2)


@pytest.mark.parametrize("name,kind", [("cnn_nr2", "cnn"), ("cnn_tc_nr", "cnn_tc")])
def test_standardised_cnn_streams_equal_offline(checkpoint, data_dir, tmp_path, name, kind):
    """The streamers apply the fixed read-out too (after the head, inside the TC recurrence):
    Python streamer and SavedModel session equal the causal offline path."""
    import dataclasses

    from tf_talkface.audio.io import load_audio
    from tf_talkface.export import export_model, load_trained, python_path_predict
    from tf_talkface.models.cnn import build_cnn, build_cnn_tc
    from tf_talkface.saved_model import load_model
    from tf_talkface.stream import streamer_for
    from tf_talkface.train import load_init_weights

    src = load_trained(checkpoint(name))
    std = [0.015, 0.012, 0.011, 0.008, 0.006, 0.005]
    build = build_cnn_tc if kind == "cnn_tc" else build_cnn
    net = build(target_mean=[0.001] * 6, target_std=std)
    load_init_weights(net, checkpoint(name).with_name(f"{name}.weights.h5"))
    # the peak-trained TC recurrence diverges on loudness-normalised input: keep its level
    level = "peak" if kind == "cnn_tc" else "loudness"
    m = dataclasses.replace(src, net=net, train=dict(src.train, level=level))
    y = load_audio(data_dir / "speech" / "test1.flac", 8000)[:5 * 8000]
    peak = float(np.abs(y).max())  # peak models stream with a fixed peak: the clip's
    off = python_path_predict(m, y, causal=True, peak=peak)
    assert np.isfinite(off).all()
    if kind == "cnn_tc":  # the rescaled read-out starts exactly where the source was
        assert np.abs(off - python_path_predict(src, y, peak=peak)).max() < 1e-4
    streamers = [streamer_for(m, peak=peak)]
    if kind == "cnn":
        streamers.append(load_model(export_model(m, tmp_path / "m" / "1")).streamer())
    for s in streamers:
        out = [s.push(y[i:i + 999]) for i in range(0, len(y), 999)] + [s.flush()]
        assert np.abs(np.concatenate(out) - off).max() < 1e-4
