"""ATVGnet networks, losses and the GAN base (issue 14): shapes against the data contract,
PyTorch-equivalent layers, the ConvGRU modes, the VG-net losses, tf.distribute equivalence,
saving, mixed precision, the image-panel callback. Small shapes throughout."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.models.atvgnet_config import PRESETS, ATVGConfig, as_config
from tf_talkface.models.atvgnet_gan import (MOUTH_Y_INDICES, ATVGnetGAN, build_atvgnet_gan,
                                            dynamic_pixel_loss, landmark_weights,
                                            weighted_landmark_mse)
from tf_talkface.models.atnet import build_atnet, compile_atnet
from tf_talkface.models.discriminator import build_discriminator
from tf_talkface.models.layers import torch_conv_transpose
from tf_talkface.models.registry import build_model, custom_objects
from tf_talkface.models.vgnet import OUTPUT_KEYS, ConvGRU, build_vgnet

ROOT = Path(__file__).resolve().parents[1]

TINY = dict(image_size=32, ngf=4, gru_channels=8, n_res_blocks=1, ndf=4, d_fc=8, d_lstm_units=8,
            d_lstm_layers=2, at_channels=(4, 4, 8, 8, 8), at_fc=(16, 8), at_example=(8, 8),
            lstm_units=8, lstm_layers=2)
"""A tiny ATVGnet (same code, 32 px) for the training-step tests."""


def _vg_batch(cfg, b, t, seed=0):
    rng = np.random.default_rng(seed)
    h = cfg.image_size
    x = {"example_image": rng.uniform(-1, 1, (b, h, h, 3)).astype(np.float32),
         "example_landmarks": (0.3 * rng.standard_normal((b, 136))).astype(np.float32),
         "landmarks": (0.3 * rng.standard_normal((b, t, 136))).astype(np.float32)}
    y = rng.uniform(-1, 1, (b, t, h, h, 3)).astype(np.float32)
    return x, y


def test_config_presets_round_trip_and_checks():
    paper = ATVGConfig.preset("paper")
    assert (paper.image_size, paper.ngf, paper.gru_channels, paper.n_res_blocks) == (128, 64, 512, 9)
    assert paper.at_flatten == 12288 and paper.landmark_embed == 64 and paper.bottleneck_size == 8
    for cfg in PRESETS.values():
        d = json.loads(json.dumps(cfg.to_dict()))
        assert ATVGConfig.from_dict(d) == cfg
    assert as_config("small") == PRESETS["small"] and as_config(None) == paper
    assert ATVGConfig.preset("small", ngf=16).ngf == 16
    for bad in (dict(image_size=72), dict(ngf=3), dict(gru_mode="batch"), dict(dropout=1.0)):
        with pytest.raises(ValueError):
            ATVGConfig(**bad)
    with pytest.raises(ValueError, match="unknown keys"):
        ATVGConfig.from_dict({"image_size": 64, "nope": 1})
    with pytest.raises(ValueError, match="preset"):
        ATVGConfig.preset("huge")


def test_atnet_paper_shapes():
    net = build_atnet("paper")
    # MaxPool(3, (1, 2)) -> 26 x 5, MaxPool(3, 2) -> 12 x 2 x 512
    assert net.audio_conv.layers[6].output.shape[1:3] == (26, 5)
    assert net.flatten_size == 12288
    rng = np.random.default_rng(0)
    y = net({"example_pca": rng.standard_normal((2, 6)).astype(np.float32),
             "mfcc": rng.standard_normal((2, 3, 28, 12)).astype(np.float32)})
    assert y.shape == (2, 3, 6) and y.dtype == tf.float32


def test_atnet_trains_with_mse():
    cfg = ATVGConfig(**TINY)
    net = compile_atnet(build_atnet(cfg), jit_compile=False)
    rng = np.random.default_rng(0)
    x = {"example_pca": rng.standard_normal((4, 6)).astype(np.float32),
         "mfcc": rng.standard_normal((4, 16, 28, 12)).astype(np.float32)}
    y = 0.1 * rng.standard_normal((4, 16, 6)).astype(np.float32)
    hist = net.fit(x, y, epochs=3, batch_size=4, verbose=0).history["loss"]
    assert hist[-1] < hist[0] and net.optimizer.beta_1 == 0.5


def test_vgnet_small_contract_and_composition():
    net = build_vgnet("small")
    cfg = net.config
    assert cfg.image_size == 64
    x, _ = _vg_batch(cfg, 2, 3)
    out = net(x, training=False)
    assert set(out) == set(OUTPUT_KEYS)
    assert out["frames"].shape == (2, 3, 64, 64, 3) and out["color"].shape == (2, 3, 64, 64, 3)
    assert out["attention"].shape == (2, 3, 64, 64, 1)
    assert out["landmark_attention"].shape == (2, 3, 16, 16, 1)
    assert all(v.dtype == tf.float32 for v in out.values())
    a, m = out["attention"].numpy(), out["color"].numpy()
    assert a.min() >= 0 and a.max() <= 1 and np.abs(m).max() <= 1
    expected = a * m + (1 - a) * x["example_image"][:, None]
    np.testing.assert_array_equal(out["frames"].numpy(), expected)  # exact, float32
    # T varies at inference; a batch row equals the same clip alone (BN in inference mode)
    one = net({k: v[1:] for k, v in x.items()}, training=False)["frames"].numpy()
    np.testing.assert_allclose(one, out["frames"].numpy()[1:], atol=1e-5)


def test_torch_conv_transpose_matches_pytorch_definition():
    """ConvTranspose2d(k3, s2, p1, output_padding=1): out[2i + ki - 1, 2j + kj - 1] +=
    x[i, j] W[ki, kj] for indices in [0, 2H) (the scatter definition, no kernel flip)."""
    rng = np.random.default_rng(0)
    h, w, cin, cout = 4, 5, 2, 3
    x = rng.standard_normal((1, h, w, cin)).astype(np.float32)
    layers = torch_conv_transpose(cout, use_bias=False)
    y = x
    for layer in layers:
        y = layer(y)
    assert y.shape == (1, 2 * h, 2 * w, cout)
    k = layers[0].kernel.numpy()  # (3, 3, out, in)
    ref = np.zeros((2 * h + 1, 2 * w + 1, cout), np.float32)
    for i in range(h):
        for j in range(w):
            ref[2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("aboc,c->abo", k, x[0, i, j])
    np.testing.assert_allclose(y[0].numpy(), ref[1:, 1:], atol=1e-5)  # PyTorch drops index 0


def _gru(mode, seed=0):
    keras.utils.set_random_seed(seed)
    g = ConvGRU(6, mode=mode)
    g.build((None, None, 4, 4, 3))
    for v in (g.kernel_ih, g.kernel_hh):
        v.assign(0.3 * np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32))
    for i, v in enumerate((g.bias_ih, g.bias_hh)):
        v.assign(0.2 * np.random.default_rng(seed + 1 + i).standard_normal(v.shape).astype(np.float32))
    return g


def test_conv_gru_time_vs_original():
    time_gru, orig = _gru("time"), _gru("original")
    orig.set_weights(time_gru.get_weights())
    x = np.random.default_rng(5).standard_normal((2, 4, 4, 4, 3)).astype(np.float32)
    yt, yo = time_gru(x).numpy(), orig(x).numpy()
    assert yt.shape == yo.shape == (2, 4, 4, 4, 6)
    np.testing.assert_allclose(yt[:, 0], yo[:, 0], atol=1e-6)  # first step: both from h = 0
    assert np.abs(yt[:, 1:] - yo[:, 1:]).max() > 1e-2  # recurrence over time changes the rest
    np.testing.assert_allclose(time_gru(x[:, :1]).numpy(), orig(x[:, :1]).numpy(), atol=1e-6)
    # original mode: each frame alone equals the frame in the sequence (no state)
    np.testing.assert_allclose(orig(x[:, 2:3]).numpy()[:, 0], yo[:, 2], atol=1e-6)
    # time mode, chunked with the carried state = whole sequence
    a, state = time_gru(x[:, :2], return_state=True)
    b = time_gru(x[:, 2:], initial_state=state)
    np.testing.assert_allclose(np.concatenate([a.numpy(), b.numpy()], 1), yt, atol=1e-5)


def test_conv_gru_equations():
    """One step from h = 0 by hand: gates (r, z, n), hidden biases applied."""
    g = _gru("time")
    x = np.random.default_rng(7).standard_normal((1, 1, 4, 4, 3)).astype(np.float32)
    gx = tf.nn.conv2d(x[:, 0], g.kernel_ih, 1, "SAME", dilations=2).numpy() + g.bias_ih.numpy()
    xr, xz, xn = np.split(gx, 3, -1)
    hr, hz, hn = np.split(g.bias_hh.numpy(), 3)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    r, z = sig(xr + hr), sig(xz + hz)
    n = np.tanh(xn + r * hn)
    np.testing.assert_allclose(g(x).numpy()[:, 0], (1 - z) * n, atol=1e-5)


def test_dynamic_pixel_loss_and_landmark_weights():
    rng = np.random.default_rng(0)
    fake = tf.constant(rng.uniform(-1, 1, (2, 3, 4, 4, 3)).astype(np.float32))
    real = rng.uniform(-1, 1, (2, 3, 4, 4, 3)).astype(np.float32)
    alpha = tf.constant(rng.uniform(0, 1, (2, 3, 4, 4, 1)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([fake, alpha])
        loss = dynamic_pixel_loss(fake, real, alpha)
        total = tf.reduce_mean(loss)
    expected = 10 * np.mean(np.abs(fake.numpy() - real) * (alpha.numpy() + 0.5), axis=(1, 2, 3, 4))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert tape.gradient(total, alpha) is None  # alpha gets no gradient from it
    assert np.abs(tape.gradient(total, fake).numpy()).min() > 0
    w = landmark_weights()
    assert MOUTH_Y_INDICES == tuple(range(97, 136, 2)) and len(MOUTH_Y_INDICES) == 20
    assert w[97] == w[135] == 100 and w[96] == w[98] == 1 and (w == 100).sum() == 20
    pred, target = rng.standard_normal((2, 3, 136)), rng.standard_normal((2, 3, 136))
    np.testing.assert_allclose(weighted_landmark_mse(pred, target, w).numpy(),
                               np.mean((w * pred - w * target) ** 2, axis=(1, 2)), rtol=1e-5)


def test_discriminator_outputs():
    cfg = ATVGConfig(**TINY)
    d = build_discriminator(cfg)
    x, y = _vg_batch(cfg, 2, 5)
    out = d({"frames": y, "example_landmarks": x["example_landmarks"]})
    assert out["logit"].shape == (2,) and out["step_logits"].shape == (2, 5)
    assert out["landmarks"].shape == (2, 5, 136)
    np.testing.assert_allclose(out["logit"].numpy(), out["step_logits"].numpy().mean(1), rtol=1e-5)
    dev = out["landmarks"].numpy() - x["example_landmarks"][:, None]  # tanh(.) + example
    assert np.abs(dev).max() < 1
    paper = build_discriminator("paper")
    assert paper.frame_encoder.layers[-2].output.shape[-1] == 32768  # 8 x 8 x 512


def test_gan_trains_saves_and_loads(tmp_path):
    cfg = ATVGConfig(**TINY)
    keras.utils.set_random_seed(0)
    gan = build_atvgnet_gan(cfg)
    gan.compile(jit_compile=False)
    assert gan.g_optimizer.beta_1 == 0.5 and float(gan.d_optimizer.learning_rate) == pytest.approx(2e-4)
    x, y = _vg_batch(cfg, 2, 4)
    hist = gan.fit(x, y, batch_size=2, epochs=2, verbose=0).history
    assert {"d_loss", "d_real", "d_fake", "d_lmark_real", "d_lmark_fake", "g_loss", "g_pix",
            "g_gan", "g_lmark"} <= set(hist)
    assert all(np.isfinite(v).all() for v in hist.values())
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 2
    val = gan.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    np.testing.assert_allclose(val["g_loss"], val["g_pix"] + val["g_gan"] + val["g_lmark"], rtol=1e-5)
    ref = gan.generator(x, training=False)["frames"].numpy()

    gan.save_weights(tmp_path / "gan.weights.h5")  # both parts + both optimizers
    gan.save_parts(tmp_path / "parts")
    gan.save(tmp_path / "gan.keras")
    gan.generator.save(tmp_path / "vgnet.keras")

    other = build_atvgnet_gan(cfg)
    other.compile(jit_compile=False)
    other.load_weights(tmp_path / "gan.weights.h5")
    np.testing.assert_allclose(other.generator(x, training=False)["frames"].numpy(), ref, atol=1e-6)
    assert int(other.g_optimizer.iterations) == 2
    for a, b in zip(other.d_optimizer.variables, gan.d_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    third = build_atvgnet_gan(cfg)
    third.load_parts(tmp_path / "parts")
    np.testing.assert_allclose(third.generator(x, training=False)["frames"].numpy(), ref, atol=1e-6)
    for a, b in zip(third.discriminator.weights, gan.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded = keras.saving.load_model(tmp_path / "gan.keras", custom_objects=custom_objects())
    assert isinstance(loaded, ATVGnetGAN) and loaded.generator.config == cfg
    assert int(loaded.g_optimizer.iterations) == 2
    np.testing.assert_allclose(loaded(x, training=False)["frames"].numpy(), ref, atol=1e-6)
    vg = keras.saving.load_model(tmp_path / "vgnet.keras", custom_objects=custom_objects())
    np.testing.assert_allclose(vg(x, training=False)["frames"].numpy(), ref, atol=1e-6)


def test_registry_builds_atvgnet_models():
    net = build_model("vgnet", config=ATVGConfig(**TINY), gru_mode="original")
    assert net.config.gru_mode == "original" and net.gru.mode == "original"
    assert build_model("atvgnet_discriminator", config="small").config.image_size == 64


def test_float32_outputs_under_mixed_bfloat16():
    cfg = ATVGConfig(**TINY)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        vg, d, at = build_vgnet(cfg), build_discriminator(cfg), build_atnet(cfg)
        assert vg.res_blocks.layers[0].compute_dtype == "bfloat16"
        x, y = _vg_batch(cfg, 1, 2)
        out = vg(x, training=False)
        assert all(v.dtype == tf.float32 for v in out.values())
        a = out["attention"].numpy()
        np.testing.assert_allclose(out["frames"].numpy(),
                                   a * out["color"].numpy() + (1 - a) * x["example_image"][:, None],
                                   atol=1e-6)
        dout = d({"frames": y, "example_landmarks": x["example_landmarks"]})
        assert all(v.dtype == tf.float32 for v in dout.values())
        p = at({"example_pca": np.zeros((1, 6), np.float32), "mfcc": np.zeros((1, 2, 28, 12), np.float32)})
        assert p.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


STRATEGY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tf_talkface.models.atvgnet_config import ATVGConfig
    from tf_talkface.models.atvgnet_gan import build_atvgnet_gan
    cfg = ATVGConfig(**json.loads(sys.argv[1]), dropout=0.0)
    if len(sys.argv) > 2:  # sensitivity check by hand: mirrored with per-replica BN statistics
        cfg = cfg.replace(sync_bn=False)
    rng = np.random.default_rng(0)
    B, T, H = 4, 3, cfg.image_size
    x = {"example_image": rng.uniform(-1, 1, (B, H, H, 3)).astype(np.float32),
         "example_landmarks": (0.3 * rng.standard_normal((B, 136))).astype(np.float32),
         "landmarks": (0.3 * rng.standard_normal((B, T, 136))).astype(np.float32)}
    y = rng.uniform(-1, 1, (B, T, H, H, 3)).astype(np.float32)
    keras.utils.set_random_seed(0)
    init = build_atvgnet_gan(cfg).get_weights()
    res = {}
    for name, strategy in (("one_device", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with strategy.scope():
            gan = build_atvgnet_gan(cfg)
            gan.set_weights(init)
            # SGD: a wrong replica scaling of the loss would change the step (Adam hides it)
            gan.compile(g_optimizer=keras.optimizers.SGD(0.01),
                        d_optimizer=keras.optimizers.SGD(0.01), jit_compile=False)
        ds = tf.data.Dataset.from_tensors((x, y)).repeat(3)  # global batch 4, 3 steps
        h = gan.fit(ds, epochs=3, steps_per_epoch=1, verbose=0).history
        res[name] = {"sync_bn": bool(gan.generator.res_blocks.layers[0].bn1.synchronized),
                     "g_loss": h["g_loss"], "d_loss": h["d_loss"],
                     "g_w": [float(np.abs(w).sum()) for w in gan.generator.get_weights()],
                     "d_w": [float(np.abs(w).sum()) for w in gan.discriminator.get_weights()],
                     "out": gan.generator(x, training=False)["frames"].numpy().ravel()[:500].tolist()}
    print(json.dumps(res))
""")


def test_gan_mirrored_two_cpus_equals_one_device():
    tiny = dict(TINY, at_channels=list(TINY["at_channels"]), at_fc=list(TINY["at_fc"]),
                at_example=list(TINY["at_example"]))
    r = subprocess.run([sys.executable, "-c", STRATEGY_SCRIPT, json.dumps(tiny)],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    one, mir = res["one_device"], res["mirrored"]
    assert mir["sync_bn"] and not one["sync_bn"]  # BN statistics over the global batch
    np.testing.assert_allclose(mir["g_loss"], one["g_loss"], rtol=1e-4)
    np.testing.assert_allclose(mir["d_loss"], one["d_loss"], rtol=1e-4)
    np.testing.assert_allclose(mir["g_w"], one["g_w"], rtol=1e-5, atol=1e-6)  # sum |w| per variable
    np.testing.assert_allclose(mir["d_w"], one["d_w"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mir["out"], one["out"], atol=1e-4)


def test_image_panel_callback(tmp_path):
    from tf_talkface.gan_callbacks import ImagePanels, panel_grid

    cfg = ATVGConfig(**TINY)
    gan = build_atvgnet_gan(cfg)
    gan.compile(jit_compile=False)
    x, y = _vg_batch(cfg, 2, 4)
    out = {k: v.numpy() for k, v in gan.generator(x, training=False).items()}
    grid = panel_grid(x["example_image"], y, out)
    assert grid.shape == (2, 4 * 32, 5 * 32, 3) and grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_allclose(grid[:, :32, :32], (x["example_image"] + 1) / 2, atol=1e-6)
    cb = ImagePanels(tmp_path / "images", x, y, every_n_steps=2, max_clips=1)
    gan.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[cb])  # 2 steps
    steps = []
    for f in (tmp_path / "images").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            for v in e.summary.value:
                if v.tag == "panels":
                    steps.append(e.step)
                    img = tf.make_ndarray(v.tensor)
                    assert img.shape[0] == 3  # width, height, then one encoded PNG
    assert steps == [2]
