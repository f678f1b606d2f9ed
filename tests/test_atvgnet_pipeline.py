"""ATVGnet end to end on real GRID clips with tiny networks: train_atvgnet (AT-net, VG-net) ->
checkpoint -> SavedModel (export -> reload equality) -> generate with a photo (mp4 + npy +
panels); the committed checkpoint (saved_models/checkpoints/atvgnet_small) at the end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_CLIPS

TINY = dict(image_size=32, ngf=8, gru_channels=16, n_res_blocks=1, ndf=8, d_fc=16,
            d_lstm_units=8, d_lstm_layers=1, at_channels=(4, 4, 8, 8, 8), at_fc=(16, 8),
            at_example=(8, 8), lstm_units=8, lstm_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def atv_dataset(data_dir, tmp_path_factory, landmark_cache):
    from tf_talkface.prepare import prepare

    root = tmp_path_factory.mktemp("atv")
    videos = root / "videos" / "s1"
    videos.mkdir(parents=True)
    for c in SMALL_CLIPS[:6]:
        (videos / f"{c}.mp4").symlink_to(data_dir / "grid" / "s1" / f"{c}.mp4")
    out = root / "ds"
    prepare([videos], out, "atvgnet", workers=2, split="0.5,0.25,0.25", seed=0,
            cache_dir=str(landmark_cache), progress=False)
    return out


@pytest.fixture(scope="module")
def runs(atv_dataset, tmp_path_factory):
    from tf_talkface.train_atvgnet import ATVGTrainConfig, train_atvgnet

    root = tmp_path_factory.mktemp("atv_runs")
    out = {}
    for part, batch in (("atnet", 2), ("vgnet", 1)):
        cfg = ATVGTrainConfig(data=str(atv_dataset), part=part, preset="small",
                              out=str(root / part), epochs=2, steps_per_epoch=2, batch_size=batch,
                              network_changes=TINY, panel_every=1, val_batches=1)
        out[part] = (root / part, train_atvgnet(cfg, verbose=0))
    return out


def test_training_writes_weights_curves_and_test_losses(runs):
    at, at_metrics = runs["atnet"]
    vg, vg_metrics = runs["vgnet"]
    assert (at / "best" / "atnet.weights.h5").is_file() and (at / "final" / "atnet.weights.h5").is_file()
    for f in ("generator.weights.h5", "discriminator.weights.h5"):
        assert (vg / "best" / f).is_file()
    assert at_metrics["epochs_run"] == 2 and np.isfinite(at_metrics["test"]["loss"])
    for k in ("g_pix", "g_gan", "g_lmark", "d_loss"):
        assert np.isfinite(vg_metrics["test"][k]), k
    assert len((vg / "history.csv").read_text().splitlines()) == 3
    assert any((vg / "tb" / "images").iterdir())  # the image panels
    cfg = json.loads((vg / "config.json").read_text())
    assert cfg["network"]["image_size"] == 32 and cfg["recipe"]["name"] == "atvgnet"


def test_a_restart_with_other_settings_is_refused(runs, atv_dataset):
    from tf_talkface.train import TrainError
    from tf_talkface.train_atvgnet import ATVGTrainConfig, train_atvgnet

    at, _ = runs["atnet"]
    with pytest.raises(TrainError, match="different run"):
        train_atvgnet(ATVGTrainConfig(data=str(atv_dataset), part="atnet", out=str(at),
                                      epochs=3, network_changes=TINY), verbose=0)


@pytest.fixture(scope="module")
def exported(runs, atv_dataset, tmp_path_factory):
    from tf_talkface.atvgnet_serving import write_checkpoint
    from tf_talkface.export import export

    at, _ = runs["atnet"]
    vg, _ = runs["vgnet"]
    root = tmp_path_factory.mktemp("atv_export")
    manifest = json.loads((atv_dataset / "manifest.json").read_text())
    ck = write_checkpoint(root / "ck", json.loads((vg / "config.json").read_text())["network"],
                          json.loads((atv_dataset / "basis.json").read_text()),
                          manifest["normalisation"], at / "best" / "atnet.weights.h5",
                          vg / "best" / "generator.weights.h5")
    return ck, export(ck, root / "atv_tiny" / "1")


def test_saved_model_equals_the_keras_networks(exported, data_dir):
    """Export -> reload: the signature gives what the Keras networks give, chunked VG-net
    (ConvGRU state carried across chunks) included."""
    import tensorflow as tf

    from tf_talkface.atvgnet_serving import ATVGCheckpoint, load_atvgnet, serving_module
    from tf_talkface.audio.io import load_audio

    ck, path = exported
    model = load_atvgnet(path)
    assert model.card["model"] == "atvgnet" and model.image_size == 32
    y = load_audio(data_dir / "grid" / "s1" / "bbaf3s.mp4", 16000)[:16000 * 2 + 100]
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    lmk = rng.normal(0, 0.3, 136).astype(np.float32)
    got = model.generate(y, crop, lmk)
    n = -(-len(y) // 640)
    assert got["frames"].shape == (n, 32, 32, 3) and got["frames"].dtype == np.uint8
    assert got["landmarks"].shape == (n, 136) and got["attention"].shape == (n, 32, 32, 1)
    c = ATVGCheckpoint(ck)
    atnet, vgnet = c.build()
    ref = serving_module(atnet, vgnet, c.pca_mean, c.pca_components, chunk_frames=1000)
    want = {k: v.numpy() for k, v in ref.generate(tf.constant(y), tf.constant(crop),
                                                   tf.constant(lmk)).items()}
    np.testing.assert_allclose(got["landmarks"], want["landmarks"], atol=1e-5)
    np.testing.assert_allclose(got["attention"], want["attention"], atol=1e-4)
    assert np.abs(got["frames"].astype(int) - want["frames"].astype(int)).max() <= 1
    # landmarks move the example's own shape: the motion is the PCA change only
    motion = got["landmarks"] - lmk[None]
    resid = motion - (motion @ c.pca_components.T) @ c.pca_components
    assert np.abs(resid).max() < 1e-4


def test_generate_makes_the_photo_speak(exported, tmp_path):
    import imageio.v3 as iio

    from tf_talkface.generate import main

    _, path = exported
    out = tmp_path / "out"
    assert main(["-i", "example", "-m", str(path), "--image", "example", "-o", str(out),
                 "--panels", "--size", "256", "--quiet"]) == 0
    lm = np.load(out / "grid_s1_bbaf3s.npy")
    assert lm.ndim == 3 and lm.shape[1:] == (68, 2) and np.all(np.isfinite(lm))
    frames = iio.imread(out / "grid_s1_bbaf3s.mp4", index=None)
    assert abs(len(frames) - len(lm)) <= 1 and min(frames.shape[1:3]) == 256
    panels = iio.imread(out / "grid_s1_bbaf3s.panels.mp4", index=None)
    assert panels.shape[2] == 4 * panels.shape[1]


def test_generate_without_a_photo_is_one_clear_error(exported, tmp_path, capsys):
    from tf_talkface.generate import main

    _, path = exported
    assert main(["-i", "example", "-m", str(path), "-o", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "ATVGnet animates a photo" in err and len(err.strip().splitlines()) == 1


def test_evaluate_scores_the_model_and_both_baselines(exported, atv_dataset, tmp_path):
    from tf_talkface.evaluate_atvgnet import SYSTEMS, evaluate_atvgnet

    _, path = exported
    s = evaluate_atvgnet(path, atv_dataset, tmp_path / "eval", max_clips=1, progress=False)
    assert s["clips"] == 1 and set(s["systems"]) == set(SYSTEMS)
    for name, m in s["systems"].items():
        assert m["frames"] > 10 and 0 < m["ssim"] <= 1 and np.isfinite(m["cpbd"]), name
    # the example baseline repeats frame 0: identical there, and better than an untrained net
    assert s["systems"]["example"]["psnr_identical"] >= 1
    assert s["systems"]["example"]["ssim"] > s["systems"]["atvgnet"]["ssim"]
    assert (tmp_path / "eval" / "results.md").is_file() and (tmp_path / "eval" / "frames.png").is_file()


# --- the committed checkpoint (saved_models/checkpoints/atvgnet_small, trained on GRID s1) ---

BUNDLED = Path(__file__).resolve().parents[1] / "saved_models" / "checkpoints" / "atvgnet_small"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """The committed checkpoint exported as `export --checkpoint` does (its SavedModel, ~47 MB,
    is not committed)."""
    from tf_talkface.export import export

    return export(BUNDLED, tmp_path_factory.mktemp("bundled") / "atvgnet_grid_s1" / "1")


def test_bundled_checkpoint_follows_an_unseen_s1_sentence(bundled, atv_dataset):
    """bbal6n is in the bundled model's test split (never trained on): AT-net's mouth opening
    follows the real one (r 0.87 measured over 20 test clips) and beats the still example;
    VG-net's frames stay the speaker's face (PSNR against the real crops ~29 dB measured)."""
    import cv2

    from tf_talkface.atvgnet_serving import load_atvgnet
    from tf_talkface.data.pipeline import read_clips
    from tf_talkface.evaluate_atvgnet import _decode
    from tf_talkface.metrics import pooled_metrics
    from tf_talkface.video_metrics import psnr

    clip = next(c for split in ("train", "val", "test") for c in read_clips(atv_dataset, split)
                if c["clip_id"].numpy().decode().endswith("bbal6n"))
    real = _decode(clip["image_jpeg"].numpy())
    lmk = clip["landmarks"].numpy().astype(np.float32)
    model = load_atvgnet(bundled)
    assert model.card["model"] == "atvgnet" and model.image_size == 64
    res = model.generate(clip["audio"].numpy().astype(np.float32), real[0], lmk[0])
    n = min(len(real), len(res["landmarks"]))
    assert n >= 70 and np.all(np.isfinite(res["landmarks"]))
    pred = pooled_metrics([res["landmarks"][:n].reshape(n, 68, 2)], [lmk[:n].reshape(n, 68, 2)])
    still = pooled_metrics([np.repeat(lmk[:1], n, 0).reshape(n, 68, 2)],
                           [lmk[:n].reshape(n, 68, 2)])
    assert pred["mouth_open_r"] > 0.6, pred
    assert pred["mouth_rmse"] < 0.8 * still["mouth_rmse"], (pred, still)
    gen = [cv2.resize(f, (128, 128), interpolation=cv2.INTER_CUBIC) for f in res["frames"][:n]]
    assert np.mean([psnr(r, g) for r, g in zip(real[:n], gen)]) > 24
