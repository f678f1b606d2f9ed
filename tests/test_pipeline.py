"""tf.data pipelines: delay/context windows, padding + weights, CNN windows, TC conditions,
in-graph noise-resilient pairs; on real prepared GRID clips and synthetic variable-length clips."""
import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.audio.features import add_context
from tf_talkface.data.manifest import DatasetError, load_manifest, shard_paths
from tf_talkface.data.pipeline import (WindowConfig, delay_targets, initial_condition,
                                       make_dataset, undelay)
from tf_talkface.data.records import ClipRecord, RecordSpec, iter_clips
from tf_talkface.prepare import write_dataset


def _clips(d, split):
    m = load_manifest(d)
    return list(iter_clips(shard_paths(d, m, split), RecordSpec.from_manifest(m)))


def test_delay_and_undelay_by_hand():
    y = tf.reshape(tf.range(5, dtype=tf.float32), (5, 1))
    np.testing.assert_array_equal(delay_targets(y, 2).numpy()[:, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(delay_targets(y, 0).numpy()[:, 0], [0, 1, 2, 3, 4])
    p = np.arange(5)[:, None]
    np.testing.assert_array_equal(undelay(p, 2)[:, 0], [2, 3, 4, 4, 4])


@pytest.mark.parametrize("delay,context", [(1, 3), (2, 0), (0, 5)])
def test_lstm_windows_on_real_clips(small_datasets, delay, context):
    d = small_datasets["eskimez2018"]
    raw = {c["clip_id"]: c for c in _clips(d, "train")}
    ds = make_dataset(d, "train", "lstm", batch_size=8, window=WindowConfig(delay, context),
                      shuffle=False)
    x, y, w = next(iter(ds))
    assert x.shape == (len(raw), 75, 128 * (context + 1)) and y.shape == (len(raw), 75, 136)
    np.testing.assert_array_equal(w.numpy(), 1.0)
    first = list(raw.values())[0]
    np.testing.assert_allclose(x[0].numpy(), add_context(first["features"], context), atol=1e-6)
    lm = first["landmarks"]
    np.testing.assert_allclose(y[0, delay:].numpy(), lm[:75 - delay])
    np.testing.assert_allclose(y[0, :delay].numpy(), np.repeat(lm[:1], delay, axis=0))


def test_variable_length_clips_are_padded_with_zero_weight(tmp_path):
    rng = np.random.default_rng(0)
    recs, lengths = [], [10, 17, 13]
    for i, t in enumerate(lengths):
        recs.append(ClipRecord(clip_id=f"v/{i}", speaker="v", split="train", source=f"{i}.mp4",
                               recipe="eskimez2018", audio=np.zeros(t * 1764, np.float32),
                               audio_sample_rate=44100, landmarks_raw=None,
                               landmarks=rng.uniform(size=(t, 68, 2)).astype(np.float32),
                               features=rng.normal(size=(t, 128)).astype(np.float32)))
    manifest = {"format_version": 1, "recipe": {"name": "eskimez2018"},
                "schema": {"landmark_dim": 136, "feature_dim": 128, "n_pca": 0,
                           "audio_sample_rate": 44100, "hop": 1764, "raw_landmarks": False},
                "clips": [{"clip_id": r.clip_id} for r in recs],
                "counts": {"train": 3, "val": 0, "test": 0}}
    write_dataset(tmp_path, manifest, iter(recs))
    x, y, w = next(iter(make_dataset(tmp_path, "train", "lstm", 3, WindowConfig(1, 2), shuffle=False)))
    assert x.shape == (3, 17, 384)
    np.testing.assert_array_equal(w.numpy().sum(axis=1), lengths)
    for i, t in enumerate(lengths):
        np.testing.assert_array_equal(w[i, :t], 1)
        np.testing.assert_array_equal(x[i, t:], 0)
        np.testing.assert_allclose(x[i, :t], add_context(recs[i].features, 2), atol=1e-6)


def test_cnn_and_tc_inputs(small_datasets):
    from tf_talkface.face.pca import PCABasis
    from tf_talkface.models.cnn import frames_for_padded_length
    d = small_datasets["eskimez2020"]
    raw = _clips(d, "train")
    x, y, w = next(iter(make_dataset(d, "train", "cnn", 8, shuffle=False)))
    assert x.shape == (len(raw), 320 * 74 + 2240) and y.shape == (len(raw), 75, 6)
    assert frames_for_padded_length(x.shape[1]) == 75
    np.testing.assert_allclose(np.abs(x.numpy()).max(axis=1), 1.0, atol=1e-6)  # max-scaled
    np.testing.assert_array_equal(x[:, :1120], 0)  # 1120 zeros before the first sample
    np.testing.assert_allclose(y[0].numpy(), raw[0]["pca"])
    (xw, cond), y2, _ = next(iter(make_dataset(d, "train", "cnn_tc", 8, shuffle=False)))
    init = initial_condition(d)
    basis = PCABasis.load(d)
    np.testing.assert_allclose(init, basis.project(basis.template), atol=1e-6)
    np.testing.assert_allclose(cond[:, 0].numpy(), np.tile(init, (len(raw), 1)), atol=1e-6)
    np.testing.assert_allclose(cond[:, 1:].numpy(), y2[:, :-1].numpy())


def test_noise_resilient_pairs_are_in_graph_and_seeded(small_datasets, data_dir):
    from tf_talkface.audio.noise import NoiseBank
    d = small_datasets["eskimez2020"]
    bank = NoiseBank.from_dir(data_dir / "noise", 8000)
    ds = make_dataset(d, "train", "cnn", 8, noise_bank=bank, shuffle=False, seed=7)
    (noisy, clean), y, w = next(iter(ds))
    assert noisy.shape == clean.shape
    np.testing.assert_allclose(np.abs(clean.numpy()).max(axis=1), 1.0, atol=1e-6)
    # noise is really there: the residual is substantial for every clip, SNR within the paper's range
    res = noisy.numpy() - clean.numpy()
    assert (np.abs(res).max(axis=1) > 1e-3).all()
    from tf_talkface.audio.noise import SNR_DB
    snr = 10 * np.log10((clean.numpy() ** 2).sum(axis=1) / (res ** 2).sum(axis=1))
    assert SNR_DB == tuple(range(6, 31, 3))  # the paper's 6-30 dB in 3-dB steps
    assert ((snr > min(SNR_DB) - 1) & (snr < max(SNR_DB) + 1)).all(), snr
    (noisy2, _), _, _ = next(iter(make_dataset(d, "train", "cnn", 8, noise_bank=bank, shuffle=False, seed=7)))
    np.testing.assert_allclose(noisy.numpy(), noisy2.numpy())  # same seed, same noise
    (noisy3, _), _, _ = next(iter(make_dataset(d, "train", "cnn", 8, noise_bank=bank, shuffle=False, seed=8)))
    assert not np.allclose(noisy.numpy(), noisy3.numpy())
    (_, _, cond), _, _ = next(iter(make_dataset(d, "train", "cnn_tc", 8, noise_bank=bank, shuffle=False)))
    assert cond.shape == y.shape


def test_mismatched_dataset_and_model_are_refused(small_datasets, tmp_path):
    with pytest.raises(DatasetError, match="model lstm needs an eskimez2018 dataset"):
        make_dataset(small_datasets["eskimez2020"], "train", "lstm")
    with pytest.raises(DatasetError, match="model cnn needs an eskimez2020 dataset"):
        make_dataset(small_datasets["eskimez2018"], "train", "cnn")
    with pytest.raises(DatasetError, match="does not exist"):
        make_dataset(tmp_path / "nothing", "train", "lstm")
