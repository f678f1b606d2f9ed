"""Tests of tf_talkface.models.

Shapes, receptive-field equivalence, serialisation, TC, NR, LSTM masks.

All on tiny random inputs (a few frames), CPU, well under a minute in total.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import keras

from tf_talkface.models.cnn import (
    FEATURE_DIM, HEAD_KERNEL, HEAD_STRIDE, HOP, PAD, WINDOW, SpeechToLandmarkCNN, build_cnn,
    build_cnn_tc, conv_head_to_dense_kernel, dense_kernel_to_conv_head, flops_fully_conv,
    flops_per_window_eval, frames_for_padded_length, frames_for_samples, generate_tc, pad_and_scale,
    pad_and_scale_tf, padded_length, samples_for_frames, teacher_forcing_condition, trunk_length)
from tf_talkface.models.lstm import build_lstm, keras2_hard_sigmoid
from tf_talkface.models.noise_resilient import NoiseResilientModel
from tf_talkface.models.registry import MODELS, build_model, custom_objects


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def _randomise_biases(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-zero biases so the tests also cover them (they start at zero)."""
    for v in model.weights:
        if "bias" in v.path:
            v.assign(rng.normal(0, 0.05, v.shape).astype("float32"))


def _wave(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
    return pad_and_scale(rng.normal(size=(batch, samples_for_frames(frames))))


# ---------------------------------------------------------------- length arithmetic / padding


def test_length_relations():
    assert trunk_length(WINDOW) == HEAD_KERNEL == 122
    assert [trunk_length(WINDOW, n) for n in (1, 2, 3)] == [1110, 545, 263]
    assert HEAD_STRIDE == 20 and FEATURE_DIM == 62464 and PAD == 1120
    assert frames_for_samples(24000) == 75 and samples_for_frames(75) == 24000
    assert frames_for_samples(24001) == 76 and frames_for_samples(1) == 1
    assert padded_length(1) == WINDOW and padded_length(75) == 25920
    for f in (1, 2, 75):
        p = padded_length(f)
        assert frames_for_padded_length(p) == f
        assert frames_for_padded_length(p + 316) == f and frames_for_padded_length(p + 317) == f + 1
    # the formula agrees with the conv arithmetic (trunk then head) for every length
    for p in range(2000, 4000):
        t = trunk_length(p)
        expected = 0 if t < HEAD_KERNEL else (t - HEAD_KERNEL) // HEAD_STRIDE + 1
        assert frames_for_padded_length(p) == expected
    # 1120 zeros on both ends of 3 s would give one frame too many
    assert frames_for_padded_length(24000 + 2 * PAD) == 76
    with pytest.raises(ValueError):
        padded_length(0)


def test_pad_and_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 24000)) * np.array([[3.0], [0.5]])
    x[1] = 0.0  # silent clip: stays zero, no NaN
    y = pad_and_scale(x)
    assert y.shape == (2, 25920) and y.dtype == np.float32
    assert np.all(y[:, :PAD] == 0) and np.all(y[:, PAD + 24000:] == 0)
    np.testing.assert_allclose(y[0, PAD:PAD + 24000], x[0] / np.abs(x[0]).max(), rtol=1e-6)
    assert np.abs(y[0]).max() == pytest.approx(1.0) and np.all(y[1] == 0)
    assert pad_and_scale(x[0]).shape == (25920,)
    # explicit frame count (e.g. the video's): cut or extend on the right
    assert pad_and_scale(x[0], n_frames=70).shape == (padded_length(70),)
    assert pad_and_scale(x[0], n_frames=80).shape == (padded_length(80),)
    for nf in (None, 70, 80):
        np.testing.assert_allclose(pad_and_scale_tf(tf.constant(x, tf.float32), nf).numpy(),
                                   pad_and_scale(x, nf), atol=1e-6)
    assert frames_for_padded_length(pad_and_scale(rng.normal(size=24001)).shape[-1]) == 76


def _layer_macs(model, n_samples: int) -> int:
    """Conv multiply-adds counted from the built Keras layers themselves (kernel sizes, strides,
    channels, 'valid' output lengths), independently of the formulas in models/cnn.py."""
    import keras

    n, macs = n_samples, 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv1D):
            k, c_in, c_out = layer.kernel.shape
            assert layer.padding == "valid"
            n = (n - k) // layer.strides[0] + 1
            macs += n * k * c_in * c_out
    return macs


def test_flop_ratio():
    model = build_cnn(6)
    model(np.zeros((1, padded_length(75)), np.float32))
    assert flops_fully_conv(75) == _layer_macs(model, padded_length(75))
    assert flops_per_window_eval(75) == 75 * _layer_macs(model, padded_length(1))
    ratio = flops_per_window_eval(75) / flops_fully_conv(75)
    assert 5.8 < ratio < 6.0


# ---------------------------------------------------------------- CNN shapes and equivalence


def test_cnn_shapes_and_features():
    rng = np.random.default_rng(1)
    model = build_cnn(n_out=6)
    one = pad_and_scale(rng.normal(size=(1, 320)), n_frames=1)
    y, feats = model(one, return_features=True)
    assert y.shape == (1, 1, 6) and feats.shape == (1, 122, 512)
    x = _wave(rng, 2, 5)
    y, feats = model(x, return_features=True)
    assert y.shape == (2, 5, 6) and feats.shape == (2, trunk_length(x.shape[1]), 512)
    assert model(x).dtype == tf.float32
    tc = build_cnn_tc(n_out=6)
    assert tc((x, np.zeros((2, 5, 6), "float32"))).shape == (2, 5, 6)
    with pytest.raises(ValueError):
        tc(x)
    with pytest.raises(ValueError):
        SpeechToLandmarkCNN(hop=100)


def test_fully_convolutional_equals_per_window():
    """Whole-clip output == trunk + Dense head on each 2240-sample window (the original way)."""
    rng = np.random.default_rng(2)
    model = build_cnn(n_out=6)
    _randomise_biases(model, rng)
    frames = 5
    x = _wave(rng, 2, frames)
    full = model(x, training=False).numpy()
    dense_kernel = conv_head_to_dense_kernel(model.head.kernel.numpy())  # (62464, 6), L-major
    bias = model.head.bias.numpy()
    for k in range(frames):
        window = x[:, HOP * k:HOP * k + WINDOW]
        assert window.shape[1] == WINDOW
        feat = model.trunk(window, training=False).numpy()
        assert feat.shape == (2, 122, 512)
        z = feat.reshape(2, FEATURE_DIM) @ dense_kernel + bias
        ref = np.where(z >= 0, z, 0.3 * z)
        np.testing.assert_allclose(full[:, k], ref, rtol=1e-5, atol=1e-5)


def test_dense_head_to_conv_head_conversion():
    """A Dense on the flattened (122, 512) map equals the conv head with the converted kernel."""
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(3, 122, 512)).astype("float32")
    kernel = rng.normal(0, 0.01, size=(FEATURE_DIM, 6)).astype("float32")
    bias = rng.normal(size=6).astype("float32")
    dense = keras.layers.Dense(6)
    dense.build((None, FEATURE_DIM))
    dense.set_weights([kernel, bias])
    ref = dense(keras.layers.Flatten()(feats)).numpy()  # Keras flatten = L-major
    conv = keras.layers.Conv1D(6, HEAD_KERNEL, strides=HEAD_STRIDE)
    conv.build((None, None, 512))
    conv.set_weights([dense_kernel_to_conv_head(kernel, "LC"), bias])
    np.testing.assert_allclose(conv(feats).numpy()[:, 0], ref, rtol=1e-5, atol=1e-5)
    # PyTorch order: Linear on x.view(B, 512 * 122) of a (B, C, L) map, weight transposed
    torch_ref = feats.transpose(0, 2, 1).reshape(3, FEATURE_DIM) @ kernel + bias
    conv.set_weights([dense_kernel_to_conv_head(kernel, "CL"), bias])
    np.testing.assert_allclose(conv(feats).numpy()[:, 0], torch_ref, rtol=1e-5, atol=1e-5)
    for order in ("LC", "CL"):
        np.testing.assert_array_equal(
            conv_head_to_dense_kernel(dense_kernel_to_conv_head(kernel, order), order), kernel)
    with pytest.raises(ValueError):
        dense_kernel_to_conv_head(kernel[:10])


# ---------------------------------------------------------------- temporal condition


def test_tc_scan_equals_python_loop():
    rng = np.random.default_rng(4)
    model = build_cnn_tc(n_out=6)
    _randomise_biases(model, rng)
    model.tc_dense.kernel.assign(rng.normal(0, 0.4, (12, 6)).astype("float32"))
    frames = 6
    x = _wave(rng, 2, frames)
    c0 = rng.normal(size=(2, 6)).astype("float32")
    out = generate_tc(model, x, c0).numpy()
    assert out.shape == (2, frames, 6)
    h = model.head_outputs(model.trunk(x, training=False)).numpy()
    c, loop = c0, []
    for t in range(frames):
        c = model.tc_dense(np.concatenate([h[:, t], c], -1)).numpy()
        loop.append(c)
    np.testing.assert_allclose(out, np.stack(loop, 1), rtol=1e-5, atol=1e-5)
    # fixed point: teacher forcing with the generated sequence reproduces it
    cond = teacher_forcing_condition(out, c0)
    np.testing.assert_allclose(model((x, cond), training=False).numpy(), out, rtol=1e-5, atol=1e-5)
    # also via the method, with a broadcast (n_out,) initial condition, and inside tf.function
    fn = tf.function(lambda w: model.generate(w, c0[0]))
    ref = generate_tc(model, x, np.broadcast_to(c0[0], (2, 6)))
    np.testing.assert_allclose(fn(tf.constant(x)).numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        generate_tc(build_cnn(), x, c0)


# ---------------------------------------------------------------- serialisation / registry


@pytest.mark.parametrize("name", ["lstm", "cnn", "cnn_tc"])
def test_keras_save_load_round_trip(name, tmp_path):
    rng = np.random.default_rng(5)
    if name == "lstm":
        model = build_model(name, input_dim=8, units=16, output_dim=4,
                            recurrent_activation="keras2_hard_sigmoid")
        inputs = rng.normal(size=(2, 7, 8)).astype("float32")
    else:
        model = build_model(name, n_out=3)
        _randomise_biases(model, rng)
        x = _wave(rng, 2, 3)
        inputs = x if name == "cnn" else (x, rng.normal(size=(2, 3, 3)).astype("float32"))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects=custom_objects())
    assert type(loaded) is type(model) and loaded.name == model.name
    np.testing.assert_array_equal(loaded(inputs, training=False).numpy(),
                                  model(inputs, training=False).numpy())
    if name != "lstm":
        assert loaded.get_config() == model.get_config()


def test_registry():
    assert set(MODELS) == {"lstm", "cnn", "cnn_tc", "atnet", "vgnet", "atvgnet_discriminator",
                           "atvgnet_gan"}
    assert isinstance(build_model("cnn_tc"), SpeechToLandmarkCNN)
    with pytest.raises(ValueError, match="cnn, cnn_tc, lstm"):
        build_model("transformer")
    assert {"SpeechToLandmarkCNN", "NoiseResilientModel"} <= set(custom_objects())


# ---------------------------------------------------------------- noise-resilient training


def _nr_batch(rng, batch=2, frames=4, n_out=3):
    clean = _wave(rng, batch, frames)
    noisy = (clean + 0.3 * rng.normal(size=clean.shape) * (clean != 0)).astype("float32")
    y = rng.normal(0, 0.3, size=(batch, frames, n_out)).astype("float32")
    return noisy, clean, y


def test_noise_resilient_fit_and_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    noisy, clean, y = _nr_batch(rng)
    nr = NoiseResilientModel(build_cnn(n_out=3, dropout=0.0))
    nr.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5))  # the paper's settings
    before = nr.evaluate((noisy, clean), y, verbose=0, return_dict=True)
    hist = nr.fit((noisy, clean), y, batch_size=2, epochs=5, verbose=0,
                  validation_data=((noisy, clean), y)).history
    for key in ("loss", "l1_clean", "l1_noisy", "feat_mse",
                "val_loss", "val_l1_clean", "val_l1_noisy"):
        assert key in hist and len(hist[key]) == 5 and np.all(np.isfinite(hist[key]))
    assert hist["loss"][-1] < hist["loss"][0]
    after = nr.evaluate((noisy, clean), y, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"]
    assert before["feat_mse"] > 0
    expected = before["l1_clean"] + before["l1_noisy"] + 1e-3 * before["feat_mse"]
    assert before["loss"] == pytest.approx(expected, rel=1e-5)
    path = tmp_path / "nr.keras"
    nr.save(path)
    loaded = keras.saving.load_model(path, custom_objects=custom_objects())
    assert isinstance(loaded, NoiseResilientModel) and loaded.w_feat == pytest.approx(1e-3)
    np.testing.assert_array_equal(loaded.predict(noisy, verbose=0), nr.predict(noisy, verbose=0))
    np.testing.assert_allclose(loaded.evaluate((noisy, clean), y, verbose=0), nr.evaluate(
        (noisy, clean), y, verbose=0), rtol=1e-6)


def test_noise_resilient_feature_term_and_padding():
    """Feature term == mean of the original per-window MSEs; padded frames drop out exactly."""
    rng = np.random.default_rng(7)
    model = build_cnn(n_out=3)
    nr = NoiseResilientModel(model, w_clean=0.5, w_noisy=2.0, w_feat=0.1)
    noisy, clean, y = _nr_batch(rng, frames=3)
    terms = {k: float(v) for k, v in nr.compute_terms(((noisy, clean), y), training=False).items()}
    # reference: per-window features, PyTorch-style MSE over (windows, 62464)
    fc = np.stack([model.trunk(clean[:, HOP * k:HOP * k + WINDOW]).numpy() for k in range(3)], 1)
    fn = np.stack([model.trunk(noisy[:, HOP * k:HOP * k + WINDOW]).numpy() for k in range(3)], 1)
    assert terms["feat_mse"] == pytest.approx(float(np.mean((fc - fn) ** 2)), rel=1e-4)
    pc, pn = model(clean).numpy(), model(noisy).numpy()
    assert terms["l1_clean"] == pytest.approx(float(np.mean(np.abs(pc - y))), rel=1e-5)
    assert terms["l1_noisy"] == pytest.approx(float(np.mean(np.abs(pn - y))), rel=1e-5)
    assert terms["loss"] == pytest.approx(
        0.5 * terms["l1_clean"] + 2 * terms["l1_noisy"] + 0.1 * terms["feat_mse"], rel=1e-5)
    # the same clips right-padded by 2 frames (zeros / junk targets), weights 0 on the padding
    extra = 2 * HOP
    pad = lambda a: np.concatenate([a, np.zeros((2, extra), "float32")], 1)  # noqa: E731
    y_pad = np.concatenate([y, 9 * np.ones((2, 2, 3), "float32")], 1)
    w = np.array([[1, 1, 1, 0, 0]] * 2, "float32")
    padded = {k: float(v) for k, v in nr.compute_terms(
        ((pad(noisy), pad(clean)), y_pad, w), training=False).items()}
    for key in terms:
        assert padded[key] == pytest.approx(terms[key], rel=1e-5), key


def test_noise_resilient_tc_step():
    rng = np.random.default_rng(8)
    noisy, clean, y = _nr_batch(rng)
    cond = teacher_forcing_condition(y, np.zeros(3, "float32")).numpy()
    nr = NoiseResilientModel(build_cnn_tc(n_out=3))
    nr.compile(optimizer="adam")
    logs = nr.train_on_batch((noisy, clean, cond), y, return_dict=True)
    assert set(logs) == {"loss", "l1_clean", "l1_noisy", "feat_mse"}
    assert nr.predict((noisy, cond), verbose=0).shape == (2, 4, 3)
    assert generate_tc(nr, noisy, np.zeros(3, "float32")).shape == (2, 4, 3)
    with pytest.raises(ValueError):
        nr.compute_terms(((noisy, clean), y), training=False)
    with pytest.raises(TypeError):
        NoiseResilientModel(build_lstm(input_dim=4, units=4, output_dim=2))


# ---------------------------------------------------------------- LSTM


def test_lstm_shapes_and_config():
    model = build_lstm(input_dim=384, units=256, output_dim=136)
    lstms = [l for l in model.layers if isinstance(l, keras.layers.LSTM)]
    assert [l.units for l in lstms] == [256, 256, 256, 136]
    for l in lstms:
        assert l.return_sequences and l.dropout == 0.2 and l.recurrent_dropout == 0.2
        assert l.cell.activation is keras.activations.sigmoid
    assert model.input_shape == (None, None, 384)
    y = model(np.zeros((2, 5, 384), "float32"))
    assert y.shape == (2, 5, 136) and np.all((y.numpy() > 0) & (y.numpy() < 1))
    np.testing.assert_allclose(keras2_hard_sigmoid(np.array([-3.0, -1.0, 0.0, 1.0, 3.0])),
                               [0.0, 0.3, 0.5, 0.7, 1.0], atol=1e-7)
    with pytest.raises(ValueError):
        build_lstm(input_dim=0)


@pytest.mark.filterwarnings("ignore:Layer 'lstm' .* does not support masking:UserWarning")
def test_lstm_padding_and_mask():
    """Right padding never changes real frames (causal); a mask handles left padding; sample
    weights with ``mean_with_sample_weight`` give the unpadded loss."""
    rng = np.random.default_rng(9)
    model = build_lstm(input_dim=6, units=8, output_dim=4, dropout=0.0, recurrent_dropout=0.0)
    x = rng.normal(size=(2, 5, 6)).astype("float32")
    x[:, 0] = 0.0  # real frames may be all zero (delta features start with zero rows)
    y = rng.uniform(size=(2, 5, 4)).astype("float32")
    ref = model(x).numpy()
    # right padding, no mask: real frames unchanged
    x_right = np.concatenate([x, rng.normal(size=(2, 3, 6)).astype("float32")], 1)
    np.testing.assert_allclose(model(x_right).numpy()[:, :5], ref, atol=1e-6)
    # left padding + boolean mask: equals the unpadded clip
    x_left = np.concatenate([np.zeros((2, 3, 6), "float32"), x], 1)
    mask = np.concatenate([np.zeros((2, 3), bool), np.ones((2, 5), bool)], 1)
    np.testing.assert_allclose(model(x_left, mask=mask).numpy()[:, 3:], ref, atol=1e-6)
    assert np.abs(model(x_left).numpy()[:, 3:] - ref).max() > 1e-3  # the mask does matter
    # loss over real frames only, via per-frame sample weights
    model.compile(loss=keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"))
    unpadded = model.evaluate(x, y, verbose=0)
    y_right = np.concatenate([y, np.ones((2, 3, 4), "float32")], 1)
    w = np.concatenate([np.ones((2, 5)), np.zeros((2, 3))], 1).astype("float32")
    padded = model.evaluate(x_right, y_right, sample_weight=w, verbose=0)
    assert padded == pytest.approx(unpadded, rel=1e-5)
