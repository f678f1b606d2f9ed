"""The landmark CNN's temporal post-filter (issue 11): the least-squares fit, the layer in the
checkpoint and the SavedModel, and streaming (Python streamer and signatures) equal to offline
with the promised K-frame latency, on real speech."""
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import committed, CHECKPOINTS
from tf_talkface.export import (ExportError, export_model, load_trained, output_filter_layer,
                                python_path_predict)
from tf_talkface.models.layers import TemporalFilter, fold_pca_filter, pad_frames, valid_filter
from tf_talkface.post_filter import (PostFilterError, fit_output_filter, fit_post_filter,
                                     lstm_predictor, main, solve_filter, stack_frames,
                                     with_post_filter)
from tf_talkface.saved_model import load_model
from tf_talkface.stream import streamer_for

K = 3


def _random_filter(k=K, n=6, seed=0):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.15, (2 * k + 1, n, n)).astype(np.float32)
    kernel[k] += np.eye(n, dtype=np.float32)
    return kernel, rng.normal(0, 0.003, n).astype(np.float32)


def test_layer_is_zero_padded_valid_filter_and_starts_as_identity():
    layer = TemporalFilter(2, 3)
    x = np.random.default_rng(1).normal(size=(1, 9, 3)).astype(np.float32)
    assert np.allclose(layer(x), x)  # identity at creation
    kernel, bias = _random_filter(2, 3, seed=2)
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    want = valid_filter(np.concatenate([np.zeros((2, 3)), x[0], np.zeros((2, 3))]), kernel, bias)
    assert np.allclose(layer(x)[0], want, atol=1e-6)
    # y_t = b + sum_j x_{t+j} W_j: a kernel with only W_{+1} = I is a shift to the left
    shift = np.zeros((5, 3, 3), np.float32)
    shift[3] = np.eye(3)
    layer.kernel.assign(shift)
    layer.bias.assign(np.zeros(3, np.float32))
    assert np.allclose(layer(x)[0, :-1], x[0, 1:]) and np.allclose(layer(x)[0, -1], 0)
    with pytest.raises(ValueError):
        TemporalFilter(0, 3)
    with pytest.raises(ValueError):
        TemporalFilter(2, 3, padding="reflect")


def test_edge_padded_layer_repeats_the_first_and_last_frames():
    kernel, bias = _random_filter(2, 3, seed=2)
    layer = TemporalFilter(2, 3, padding="edge")
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    x = np.random.default_rng(1).normal(size=(1, 9, 3)).astype(np.float32)
    padded = np.concatenate([x[0, :1], x[0, :1], x[0], x[0, -1:], x[0, -1:]])
    assert np.array_equal(pad_frames(x[0], 2, "edge"), padded)
    assert np.allclose(layer(x)[0], valid_filter(padded, kernel, bias), atol=1e-6)
    # a constant sequence stays constant up to the kernel's gain: no pull to zero at the ends
    const = np.ones((1, 7, 3), np.float32)
    assert np.allclose(layer(const)[0], layer(const)[0, 3], atol=1e-6)
    assert TemporalFilter.from_config(layer.get_config()).padding == "edge"


def test_least_squares_recovers_a_known_filter():
    kernel, bias = _random_filter(2, 4, seed=3)
    rng = np.random.default_rng(4)
    raw = [rng.normal(size=(rng.integers(40, 90), 4)) for _ in range(30)]
    true = [stack_frames(r, 2) @ np.concatenate([kernel.reshape(-1, 4), bias[None]])
            + rng.normal(0, 1e-3, (len(r), 4)) for r in raw]
    k, b = solve_filter(raw, true, 2, ridge=0.0)
    assert np.abs(k - kernel).max() < 5e-3 and np.abs(b - bias).max() < 5e-3
    with pytest.raises(PostFilterError):
        solve_filter(raw, true[:-1], 2)
    with pytest.raises(PostFilterError):
        solve_filter(raw, true, 0)


@pytest.fixture(scope="module", params=["zeros", "edge"])
def filtered(checkpoint, request):
    """The committed default CNN (loudness input) with a random K=3 post-filter, each padding."""
    m = load_trained(checkpoint("cnn_nr_voices5"))
    return m, with_post_filter(m, *_random_filter(), padding=request.param)


@pytest.fixture(scope="module")
def speech(data_dir):
    from tf_talkface.audio.io import load_audio

    return load_audio(data_dir / "speech" / "test1.flac", 8000)[:8000 * 4]


def test_checkpoint_model_applies_the_filter_to_the_networks_output(filtered, speech):
    m, f = filtered
    raw = m.basis.project(python_path_predict(m, speech).reshape(-1, 136))
    out = f.basis.project(python_path_predict(f, speech).reshape(-1, 136))
    kernel, bias = _random_filter()
    want = valid_filter(pad_frames(raw, K, f.net.post_filter.padding), kernel, bias)
    assert out.shape == raw.shape and np.abs(out - want).max() < 1e-5
    with pytest.raises(PostFilterError, match="already"):
        with_post_filter(f, *_random_filter())


def _push_all(s, y, chunk):
    s.reset()
    out, when = [], []
    for i in range(0, len(y), chunk):
        lm = s.push(y[i:i + chunk])
        out.append(lm)
        when += [min(i + chunk, len(y))] * len(lm)
    out.append(s.flush())
    return np.concatenate(out), when


@pytest.mark.parametrize("chunk", [160, 999, 8000])
def test_python_streamer_equals_offline_k_frames_later(filtered, speech, chunk):
    m, f = filtered
    offline = python_path_predict(f, speech, causal=True)
    got, when = _push_all(streamer_for(f), speech, chunk)
    assert got.shape == offline.shape and np.abs(got - offline).max() < 1e-5
    _, plain_when = _push_all(streamer_for(m), speech, chunk)
    s = streamer_for(f)
    assert s.latency_ms == pytest.approx(streamer_for(m).latency_ms + K * 40)
    # frame t leaves when the plain model's frame t + K does (or at the flush)
    for t in range(len(when)):
        assert when[t] == (plain_when[t + K] if t + K < len(plain_when) else len(speech))


def test_savedmodel_and_signatures_equal_the_python_path(filtered, speech, tmp_path):
    _, f = filtered
    d = export_model(f, tmp_path / "pf" / "1")
    card = json.loads((d / "model_card.json").read_text())
    assert card["post_filter_frames"] == K
    assert card["post_filter_padding"] == f.net.post_filter.padding
    assert card["streaming"]["latency_ms"] == pytest.approx(139.625 + K * 40)
    loaded = load_model(d)
    assert np.abs(loaded.predict(speech) - python_path_predict(f, speech)).max() < 1e-5
    # a padded batch: the shorter clip's last frames see its own padding beyond it, as alone
    a, b = loaded.predict_batch([speech, speech[:9000]])
    assert np.abs(b - python_path_predict(f, speech[:9000])).max() < 1e-5
    assert np.abs(a - python_path_predict(f, speech)).max() < 1e-5
    s = loaded.streamer()
    assert s.latency_ms == pytest.approx(139.625 + K * 40)
    offline = python_path_predict(f, speech, causal=True)
    for chunk in (333, 4000):
        got, _ = _push_all(s, speech, chunk)
        assert got.shape == offline.shape and np.abs(got - offline).max() < 1e-5
    short = speech[:500]  # fewer frames than the filter spans
    got, _ = _push_all(s, short, 100)
    assert np.abs(got - python_path_predict(f, short, causal=True)).max() < 1e-5


def test_fit_on_real_clips_improves_the_fit_and_the_cli_writes_a_loadable_checkpoint(
        small_datasets, data_dir, tmp_path):
    d20 = small_datasets["eskimez2020"]
    src = committed(CHECKPOINTS / "cnn_nr_voices5.json")
    m = load_trained(src, basis=d20)
    f, rec = fit_post_filter(m, d20, frames=2, max_clips=4, progress=False)
    assert rec["clips"] == 4 and rec["n_frames"] > 200
    # least squares with the identity among its solutions: never worse on what it fitted
    assert all(a >= b - 1e-3 for a, b in zip(rec["r2_after"], rec["r2_before"]))
    assert sum(rec["r2_after"]) > sum(rec["r2_before"])
    # with noisy copies: every clip enters twice (clean and mixed), the draws are recorded
    fn, recn = fit_post_filter(m, d20, frames=2, max_clips=4, progress=False,
                               noise=data_dir / "noise", snrs=(5.0,), seed=3)
    assert recn["clips"] == 4 and recn["n_frames"] == 2 * rec["n_frames"]
    assert recn["noise"]["files"] >= 2 and recn["noise"]["snr_db"] == [5.0]
    assert not np.allclose(fn.net.post_filter.kernel, f.net.post_filter.kernel)
    with pytest.raises(PostFilterError, match="noise"):
        fit_post_filter(m, d20, frames=2, max_clips=1, progress=False, noise=tmp_path)
    out = tmp_path / "ck" / "cnn_pf.json"
    assert main(["--model", str(src), "--basis", str(d20), "--data", str(d20), "--frames", "2",
                 "--max-clips", "4", "--out", str(out), "--quiet"]) == 0
    ck = json.loads(out.read_text())
    assert ck["post_filter"]["frames"] == 2 and "test" not in ck
    back = load_trained(out)
    y = np.random.default_rng(0).normal(0, 0.05, 12000).astype(np.float32)
    assert np.abs(python_path_predict(back, y) - python_path_predict(f, y)).max() < 1e-6
    assert ck["post_filter"]["padding"] == "edge" == back.net.post_filter.padding
    # a dataset of another PCA basis is refused, and so is a TC model
    assert main(["--model", str(src), "--data", str(d20), "--out", str(tmp_path / "x.json"),
                 "--quiet"]) == 2
    assert not (tmp_path / "x.json").exists()


def test_training_with_a_post_filter_trains_it_from_the_fitted_one(small_datasets, data_dir, tmp_path):
    """``train --post-filter K``: the network ends in an edge-padded filter trained with it; a
    post-filter checkpoint as ``--init-weights`` starts it from the fitted filter."""
    from tf_talkface.train import TrainConfig, TrainError, train

    d20 = small_datasets["eskimez2020"]
    m = load_trained(committed(CHECKPOINTS / "cnn_nr_voices5.json"), basis=d20)
    src = tmp_path / "ck" / "pf.json"
    f, rec = fit_post_filter(m, d20, frames=2, max_clips=2, progress=False)
    from tf_talkface.post_filter import save_checkpoint
    save_checkpoint(f, committed(CHECKPOINTS / "cnn_nr_voices5.json"), rec, src)
    fitted = np.asarray(f.net.post_filter.kernel)
    out = tmp_path / "run"
    train(TrainConfig(data=str(d20), model="cnn", out=str(out), noise=str(data_dir / "noise"),
                      epochs=1, steps_per_epoch=2, batch_size=2, lr=1e-3, preset="robust",
                      crop_frames=16, post_filter_frames=2,
                      init_weights=str(src.with_name("pf.weights.h5"))), verbose=0)
    run = load_trained(out)
    pf = run.net.post_filter
    assert pf is not None and pf.frames == 2 and pf.padding == "edge"
    k = np.asarray(pf.kernel)
    # started from the fitted filter (not the identity) and moved by training
    assert np.abs(k - fitted).max() < 0.05 * np.abs(fitted).max() and not np.allclose(k, fitted)
    with pytest.raises(TrainError, match="post-filter"):
        train(TrainConfig(data=str(d20), model="cnn_tc", out=str(tmp_path / "tc"),
                          post_filter_frames=2))


# --------------------------------------------------------------------------- the LSTM's filter

def _random_pca_filter(k=K, n=5, seed=5):
    """A random filter in a random n-component orthonormal basis of the 136 coordinates."""
    rng = np.random.default_rng(seed)
    comps = np.linalg.qr(rng.normal(size=(136, n)))[0].T
    mean = rng.normal(0.5, 0.05, 136)
    kernel, bias = _random_filter(k, n, seed)
    return mean, comps, kernel, bias


def test_folded_pca_filter_equals_filtering_the_coefficients():
    mean, comps, kernel, bias = _random_pca_filter()
    x = np.random.default_rng(6).normal(0.5, 0.05, (40, 136))
    c = (x - mean) @ comps.T
    f = valid_filter(pad_frames(c, K, "edge"), kernel, bias)
    want = x + (f - c) @ comps  # the coefficients replaced, the rest passed through
    full, b = fold_pca_filter(mean, comps, kernel, bias)
    assert full.shape == (2 * K + 1, 136, 136)
    assert np.abs(valid_filter(pad_frames(x, K, "edge"), full, b) - want).max() < 1e-5
    # the identity in the PCA is the identity on the landmarks
    eye = np.zeros_like(kernel)
    eye[K] = np.eye(len(comps))
    full, b = fold_pca_filter(mean, comps, eye, np.zeros(len(comps)))
    assert np.abs(valid_filter(pad_frames(x, K, "edge"), full, b) - x).max() < 1e-5
    with pytest.raises(ValueError):
        fold_pca_filter(mean, comps, kernel[:, :2], bias)


@pytest.fixture(scope="module")
def lstm_filtered(checkpoint):
    """The committed LSTM with a random K=3 post-filter in a 5-component PCA."""
    import dataclasses

    m = load_trained(checkpoint("lstm_voices"))
    layer = output_filter_layer(*fold_pca_filter(*_random_pca_filter()))
    return m, dataclasses.replace(m, output_filter=layer)


@pytest.fixture(scope="module")
def speech44(data_dir):
    from tf_talkface.audio.io import load_audio

    return load_audio(data_dir / "speech" / "test1.flac", 44100)[:44100 * 3]


def test_lstm_filter_offline_streamed_and_exported(lstm_filtered, speech44, tmp_path):
    """The LSTM's post-filter on the undelayed landmarks: the Python path, both streamers
    (K frames later) and the SavedModel (single, padded batch) agree."""
    m, f = lstm_filtered
    plain = python_path_predict(m, speech44)
    offline = python_path_predict(f, speech44)
    want = valid_filter(pad_frames(plain.reshape(-1, 136), K, "edge"),
                        np.asarray(f.output_filter.kernel), np.asarray(f.output_filter.bias))
    assert np.abs(offline.reshape(-1, 136) - want).max() < 1e-5
    assert np.abs(offline - plain).max() > 1e-3  # the filter does something
    lstm_predict = lstm_predictor(m)  # the fit's fast path: the same network output
    assert np.abs(lstm_predict(speech44) - plain.reshape(-1, 136)).max() < 1e-4
    s = streamer_for(f)
    assert s.latency_ms == pytest.approx(streamer_for(m).latency_ms + K * 40) == 60 + K * 40
    got, when = _push_all(s, speech44, 1500)  # (the CNN's tests above vary the chunking)
    assert got.shape == offline.shape and np.abs(got - offline).max() < 1e-4
    _, plain_when = _push_all(streamer_for(m), speech44, 1500)
    for t in range(len(when)):
        assert when[t] == (plain_when[t + K] if t + K < len(plain_when) else len(speech44))
    d = export_model(f, tmp_path / "lstm_pf" / "1")
    card = json.loads((d / "model_card.json").read_text())
    assert card["post_filter_frames"] == K and card["post_filter_padding"] == "edge"
    assert card["streaming"]["latency_ms"] == pytest.approx(60 + K * 40)
    loaded = load_model(d)
    a, b = loaded.predict_batch([speech44, speech44[:30000]])
    assert np.abs(a - offline).max() < 1e-4
    assert np.abs(b - python_path_predict(f, speech44[:30000])).max() < 1e-4
    sig = loaded.streamer()
    got, _ = _push_all(sig, speech44, 5000)
    assert got.shape == offline.shape and np.abs(got - offline).max() < 1e-4
    short = speech44[:3000]  # fewer frames than the filter spans
    got, _ = _push_all(sig, short, 1000)
    assert np.abs(got - python_path_predict(f, short)).max() < 1e-4


def test_lstm_fit_on_real_clips_and_the_cli_checkpoint(small_datasets, tmp_path):
    d18 = small_datasets["eskimez2018"]
    src = committed(CHECKPOINTS / "lstm_voices.json")
    m = load_trained(src)
    f, rec = fit_output_filter(m, d18, frames=2, components=5, split="train", max_clips=4,
                               progress=False)
    assert rec["clips"] == 4 and rec["components"] == 5 and rec["padding"] == "edge"
    assert sum(rec["r2_after"]) > sum(rec["r2_before"])
    assert f.output_filter.frames == 2 and m.output_filter is None
    with pytest.raises(PostFilterError, match="already"):
        fit_output_filter(f, d18, frames=2, max_clips=1, progress=False)
    with pytest.raises(PostFilterError, match="eskimez2018"):
        fit_output_filter(m, small_datasets["eskimez2020"], frames=2, max_clips=1, progress=False)
    out = tmp_path / "ck" / "lstm_pf.json"
    assert main(["--model", str(src), "--data", str(d18), "--frames", "2", "--components", "5",
                 "--split", "train", "--max-clips", "4", "--out", str(out), "--quiet"]) == 0
    ck = json.loads(out.read_text())
    assert ck["post_filter"]["components"] == 5 and "test" not in ck
    assert out.with_name("lstm_pf.post_filter.npz").is_file()
    back = load_trained(out)
    assert np.allclose(back.output_filter.kernel, f.output_filter.kernel, atol=1e-6)
    out.with_name("lstm_pf.post_filter.npz").write_bytes(b"broken")
    with pytest.raises(ExportError, match="post_filter.npz"):
        load_trained(out)
