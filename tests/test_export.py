"""SavedModel export: reload -> equality with the library's Python path on real speech, batching
with lengths, the features signature, model cards, no tensorflow-io ops, errors, atomicity."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.export import (ExportError, export, export_model, load_trained,
                                python_path_predict)
from tf_talkface.saved_model import ModelError, load_model, read_card, resolve_model_dir




@pytest.fixture(scope="module")
def lstm_export(tmp_path_factory, checkpoint):
    src = checkpoint("lstm_d1_c3_b16")
    out = tmp_path_factory.mktemp("exp") / "lstm_grid_s1" / "1"
    export(src, out)
    return load_trained(src), out


@pytest.fixture(scope="module")
def cnn_tc_export(tmp_path_factory, checkpoint):
    src = checkpoint("cnn_tc_nr")
    out = tmp_path_factory.mktemp("exp") / "cnn_tc" / "3"
    export(src, out)
    return load_trained(src), out


@pytest.fixture(scope="module")
def speech(data_dir):
    from tf_talkface.audio.io import load_audio

    path = data_dir / "speech" / "test1.flac"
    return {sr: load_audio(path, sr) for sr in (44100, 8000)}


def _energy_correlation(landmarks, y, hop):
    gap = landmarks[:, 66, 1] - landmarks[:, 62, 1]
    energy = np.array([np.sqrt(np.mean(np.square(y[i * hop:(i + 1) * hop]))) if i * hop < len(y)
                       else 0.0 for i in range(len(gap))])
    return np.corrcoef(gap, np.log(energy + 1e-4))[0, 1]


def test_lstm_savedmodel_equals_python_path(lstm_export, speech):
    trained, out = lstm_export
    y = speech[44100][: 44100 * 4 + 1234]  # 4 s of real speech, not a multiple of the hop
    ref = python_path_predict(trained, y)
    assert ref.shape == (1 + len(y) // 1764, 68, 2)
    m = load_model(out)
    got = m.predict(y)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # the mouth follows the speech: inner-lip gap vs log frame energy (measured: r = 0.73)
    assert _energy_correlation(got, y, 1764) > 0.5


def test_lstm_batch_rows_equal_single_calls(lstm_export, speech):
    trained, out = lstm_export
    m = load_model(out)
    y = speech[44100]
    a, b, c = y[:44100 * 3], y[10000:10000 + 20000], y[5000:5000 + 883]  # 883 = shortest input
    outs = m.predict_batch([a, b, c])
    for w, o in zip((a, b, c), outs):
        assert o.shape == (1 + len(w) // 1764, 68, 2)
        np.testing.assert_allclose(o, python_path_predict(trained, w), atol=1e-4)
    # padded frames are zero, and the full_length signature gives the same as lengths = samples
    sig = m.module.signatures
    batch = np.zeros((2, len(a)), np.float32)
    batch[0], batch[1, :len(b)] = a, b
    r = sig["serving_default"](waveform=tf.constant(batch), lengths=tf.constant([len(a), len(b)]))
    lm, frames = r["landmarks"].numpy(), r["frames"].numpy()
    assert list(frames) == [1 + len(a) // 1764, 1 + len(b) // 1764]
    assert np.all(lm[1, frames[1]:] == 0)
    full = sig["full_length"](waveform=tf.constant(a[None]))["landmarks"].numpy()[0]
    np.testing.assert_allclose(full, lm[0], atol=1e-6)


def test_lstm_features_signature(lstm_export, speech):
    from tf_talkface.audio.features import logmel_delta_features

    trained, out = lstm_export
    y = speech[44100][:44100 * 2]
    feats = logmel_delta_features(y)
    m = load_model(out)
    r = m.module.signatures["features"](features=tf.constant(feats[None]),
                                        frames=tf.constant([len(feats)]))
    np.testing.assert_allclose(r["landmarks"].numpy()[0], python_path_predict(trained, y), atol=1e-4)


def test_too_short_waveform_is_refused(lstm_export):
    _, out = lstm_export
    m = load_model(out)
    with pytest.raises(ModelError, match="shorter than the model's minimum"):
        m.predict(np.zeros(500, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths larger"):
        m.module.signatures["serving_default"](waveform=tf.zeros([1, 2000]),
                                               lengths=tf.constant([3000]))


def test_cnn_tc_savedmodel_equals_python_path(cnn_tc_export, speech):
    trained, out = cnn_tc_export
    y = speech[8000][:8000 * 3 + 77]
    m = load_model(out)
    ref = python_path_predict(trained, y)
    assert ref.shape == (-(-len(y) // 320), 68, 2)
    got, short = m.predict_batch([y, y[:4000]])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert _energy_correlation(got, y, 320) > 0.5
    np.testing.assert_allclose(short, python_path_predict(trained, y[:4000]), atol=1e-4)
    r = m.module.signatures["full_length"](waveform=tf.constant(y[None]))
    codes = r["pca_coefficients"].numpy()[0]
    np.testing.assert_allclose(trained.basis.reconstruct(codes), ref, atol=1e-4)


def _graph_ops(saved_model_dir: Path) -> set[str]:
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    ops = set()
    for mg in sm.meta_graphs:
        ops |= {n.op for n in mg.graph_def.node}
        for f in mg.graph_def.library.function:
            ops |= {n.op for n in f.node_def}
    return ops


def test_exported_graphs_are_servable(lstm_export, cnn_tc_export):
    for (trained, out), need in ((lstm_export, {"RFFT", "MatMul", "Sigmoid", "Log"}),
                                 (cnn_tc_export, {"Conv2D", "LeakyRelu"})):
        ops = _graph_ops(out)
        # the model's own computation is in the graph: the 2018 front-end (STFT, mel matmul,
        # log) + LSTM gates; the 2020 convolutions and the in-graph TC recurrence (a loop)
        assert need <= ops, (trained.kind, sorted(need - ops))
        if trained.kind == "cnn_tc":
            assert ops & {"While", "StatelessWhile"}, "no loop: the TC recurrence is missing"
        io_ops = sorted(o for o in ops if o.startswith("IO>"))
        assert not io_ops, f"tensorflow-io ops in the SavedModel: {io_ops}"
        sig = tf.saved_model.load(str(out)).signatures["serving_default"]
        assert set(sig.structured_input_signature[1]) == {"waveform", "lengths"}
        assert {"landmarks", "frames"} <= set(sig.structured_outputs)


def test_model_card(lstm_export, cnn_tc_export):
    trained, out = lstm_export
    card = read_card(out)
    assert card["model"] == "lstm" and card["recipe"] == "eskimez2018"
    assert card["sample_rate"] == 44100 and card["fps"] == 25
    assert card["delay"] == 1 and card["context"] == 3 and card["version"] == 1
    assert card["name"] == "lstm_grid_s1"
    td = card["training_data"]
    assert len(td["manifest_sha1"]) == 40 and td["counts"]["train"] > 0
    assert td["provenance"]["license"] == "CC BY 4.0"
    assert card["test_metrics"]["model"]["mouth_open_r"] == trained.test_metrics["model"]["mouth_open_r"]
    assert np.asarray(card["neutral_face"]).shape == (68, 2)
    card2 = read_card(cnn_tc_export[1])
    assert card2["model"] == "cnn_tc" and card2["sample_rate"] == 8000
    assert card2["noise_resilient"] is True and card2["pca_basis"] == "pca_basis.json"
    assert (cnn_tc_export[1] / "pca_basis.json").is_file()


def test_export_from_run_folder(small_datasets, tmp_path, capsys):
    """A run folder through the export CLI (issue 12 C8) and through stream -m RUN."""
    from tf_talkface import export as E
    from tf_talkface import stream as S
    from tf_talkface.audio.io import write_wav
    from tf_talkface.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(data=str(small_datasets["eskimez2020"]), model="cnn", out=str(run),
                      epochs=1, batch_size=2, steps_per_epoch=1), verbose=0)
    out = tmp_path / "models" / "tiny" / "1"
    assert E.main(["--run", str(run), "--out", str(out)]) == 0
    assert f"exported cnn (8000 Hz in, 25 fps out) to {out}" in capsys.readouterr().out
    assert E.main(["--run", str(run), "--out", str(out)]) == 1  # exists: --overwrite needed
    assert "pass --overwrite" in capsys.readouterr().err
    wav = write_wav(tmp_path / "a.wav", np.random.default_rng(1).normal(0, 0.1, 8000), 8000)
    assert S.main(["-m", str(run), "-i", str(wav), "-o", str(tmp_path / "s.npy")]) == 0
    streamed = np.load(tmp_path / "s.npy")
    assert streamed.shape == (25, 68, 2) and np.isfinite(streamed).all()
    card = read_card(out)
    assert card["model"] == "cnn" and card["training_data"]["name"] == small_datasets["eskimez2020"].name
    trained = load_trained(run)
    y = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    np.testing.assert_allclose(load_model(out).predict(y), python_path_predict(trained, y), atol=1e-4)


def test_export_errors_and_atomicity(lstm_export, tmp_path, monkeypatch):
    trained, out = lstm_export
    with pytest.raises(ExportError, match="version number"):
        export_model(trained, tmp_path / "m" / "latest")
    with pytest.raises(ExportError, match="exists"):
        export_model(trained, out)
    with pytest.raises(ExportError, match="run folder or a checkpoint"):
        load_trained(tmp_path / "nothing.txt")
    with pytest.raises(ExportError, match="not a training run"):
        load_trained(tmp_path)
    bad = tmp_path / "ck.json"
    bad.write_text(json.dumps({"train": {"model": "lstm"}, "model_config": {}}))
    with pytest.raises(ExportError, match="weights file"):
        load_trained(bad)

    import tf_talkface.export as E

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(E, "model_card", boom)
    dest = tmp_path / "m2" / "x" / "1"
    with pytest.raises(RuntimeError):
        export_model(trained, dest)
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_load_model_errors(lstm_export, tmp_path):
    _, out = lstm_export
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a tf_talkface SavedModel"):
        load_model(tmp_path / "empty")
    # a SavedModel that tf_talkface did not export
    plain = tmp_path / "plain" / "1"
    tf.saved_model.save(tf.Module(), str(plain))
    with pytest.raises(ModelError, match="not exported by tf_talkface"):
        load_model(plain)
    # NAME folder -> highest version
    assert resolve_model_dir(out.parent) == out


def test_exported_folder_follows_the_umask(cnn_tc_export):
    """Issue 12 B10: the version folder (from mkdtemp: 0700) and pca_basis.json (from mkstemp:
    0600) get the umask's modes, so a TF Serving process running as another user reads them."""
    _, out = cnn_tc_export
    mask = os.umask(0o022)
    os.umask(mask)
    assert (out / "pca_basis.json").is_file()
    for p in [out, *out.rglob("*")]:
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode & 0o777))
