"""Input level normalisation (issue 11): gated active-speech RMS + soft limiter, its TF twin,
the causal (streaming) rule, and a loudness model end to end (offline, SavedModel, streams)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.audio.level import (LevelConfig, CausalLevel, causal_level_init_tf,
                                     causal_level_step_tf, causal_normalise, compress_tf,
                                     gated_rms, gated_rms_tf, normalise_level,
                                     normalise_level_tf, soft_limit)

LOUD = LevelConfig("loudness")
SR = 8000


@pytest.fixture(scope="module")
def speech(data_dir):
    from tf_talkface.audio.io import load_audio

    return {name: load_audio(data_dir / "speech" / name, SR)
            for name in ("test1.flac", "obama.wav", "F03C.wav")}


def _db(x):
    return 20 * np.log10(x)


def test_soft_limit_is_identity_below_the_knee_and_bounded():
    x = np.linspace(-5, 5, 10001, dtype=np.float32)
    y = soft_limit(x, 0.5)
    small = np.abs(x) <= 0.5
    assert np.array_equal(y[small], x[small])
    assert np.all(np.abs(y) <= 1.0) and np.all(np.diff(y) >= 0)  # bounded, monotonic
    assert np.allclose(soft_limit_tf_np(x), y, atol=1e-6)


def soft_limit_tf_np(x):
    from tf_talkface.audio.level import soft_limit_tf
    return soft_limit_tf(x, 0.5).numpy()


def test_gated_rms_ignores_pauses_and_numpy_equals_tf(speech):
    y = speech["test1.flac"]
    level = gated_rms(y, SR, LOUD)
    # 10 s of silence added around the speech: the gated level stays, the plain RMS drops
    padded = np.concatenate([np.zeros(10 * SR, np.float32), y, np.zeros(10 * SR, np.float32)])
    assert gated_rms(padded, SR, LOUD) == pytest.approx(level, rel=0.02)
    assert np.sqrt(np.mean(padded ** 2)) < 0.8 * np.sqrt(np.mean(y ** 2))
    for name, x in speech.items():
        assert float(gated_rms_tf(x, SR, LOUD)) == pytest.approx(gated_rms(x, SR, LOUD), rel=1e-5), name
    assert gated_rms(np.zeros(100), SR, LOUD) == 0.0 and float(gated_rms_tf(np.zeros(100), SR, LOUD)) == 0.0
    short = y[:1000]  # shorter than one 400-ms block: one block over the clip
    assert float(gated_rms_tf(short, SR, LOUD)) == pytest.approx(gated_rms(short, SR, LOUD), rel=1e-5)


def test_padded_batch_rows_measure_as_unpadded(speech):
    a, b = speech["test1.flac"][:20000], speech["obama.wav"][:9000]
    batch = np.zeros((2, 20000), np.float32)
    batch[0], batch[1, :9000] = a, b
    got = gated_rms_tf(batch, SR, LOUD, lengths=[20000, 9000]).numpy()
    assert got == pytest.approx([gated_rms(a, SR, LOUD), gated_rms(b, SR, LOUD)], rel=1e-5)
    y = normalise_level_tf(batch, SR, LOUD, lengths=[20000, 9000]).numpy()
    assert np.abs(y[1, :9000] - normalise_level(b, SR, LOUD)).max() < 1e-6
    assert not y[1, 9000:].any()  # padding stays zero


@pytest.mark.parametrize("gain_db", [-12, -6, 6])
def test_normalised_level_does_not_depend_on_gain_or_a_click(speech, gain_db):
    for name, y in speech.items():
        ref = normalise_level(y, SR, LOUD)
        assert _db(gated_rms(ref, SR, LOUD)) == pytest.approx(LOUD.target_dbfs, abs=1.0), name
        g = np.clip(y * 10 ** (gain_db / 20), -1, 1)
        assert np.abs(normalise_level(g, SR, LOUD) - ref).max() < 0.02, name
        click = y.copy()
        click[len(y) // 2] = 1.0  # the paper's peak scaling would rescale everything
        out = normalise_level(click, SR, LOUD)
        keep = np.arange(len(y)) != len(y) // 2
        assert np.abs(out[keep] - ref[keep]).max() < 0.02, name
        peak = y / np.abs(y).max()
        peak_click = click / np.abs(click).max()
        assert np.abs(peak_click[keep] - peak[keep]).max() > 0.05  # what the paper's way does


def test_tf_normalisation_equals_numpy(speech):
    for name, y in speech.items():
        assert np.abs(normalise_level_tf(y, SR, LOUD).numpy() - normalise_level(y, SR, LOUD)).max() < 1e-6


def test_causal_rule_is_chunking_invariant_and_lands_near_the_target(speech):
    rng = np.random.default_rng(0)
    step = tf.function(lambda a, s: causal_level_step_tf(a, s, SR, 320, LOUD), reduce_retracing=True)
    for name, y in speech.items():
        ref = causal_normalise(y, SR, 320, LOUD)
        c = CausalLevel(SR, 320, LOUD)
        cuts = np.cumsum(rng.integers(1, 3000, size=len(y) // 500))
        parts = np.split(y, cuts[cuts < len(y)])
        assert np.array_equal(np.concatenate([c.push(p) for p in parts]), ref), name
        state, out = causal_level_init_tf(), []
        for p in parts[:40] + [np.concatenate(parts[40:])]:
            o, state = step(tf.constant(p), state)
            out.append(o.numpy())
        assert np.abs(np.concatenate(out) - ref).max() < 1e-6, name
        # after a few seconds the causal level is within 4 dB of the target
        tail = ref[3 * SR:]
        assert abs(_db(gated_rms(tail, SR, LOUD)) - LOUD.target_dbfs) < 4.0, name


def test_compressor_reduces_only_above_threshold():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 200 * t) * (t > 0.5) + 0.01 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    y = compress_tf(x, SR, threshold_db=-20.0, ratio=4.0).numpy()
    assert np.allclose(y[:3000], x[:3000], atol=1e-6)   # quiet part untouched
    assert np.abs(y[5000:]).max() < 0.5 * np.abs(x[5000:]).max()


def test_level_config_round_trip_and_errors():
    assert LevelConfig.from_dict(LOUD.to_dict()) == LOUD
    assert LevelConfig.from_dict(None).mode == "peak"
    with pytest.raises(ValueError, match="level mode"):
        LevelConfig("rms")


# ------------------------------------------------------------------ a loudness model end to end

@pytest.fixture(scope="module")
def loud_model(checkpoint):
    from tf_talkface.export import load_trained

    m = load_trained(checkpoint("cnn_nr2"))
    return dataclasses.replace(m, train=dict(m.train, level="loudness"))


def test_loudness_model_offline_savedmodel_and_streams_agree(loud_model, speech, tmp_path):
    from tf_talkface.export import export_model, python_path_predict
    from tf_talkface.saved_model import load_model
    from tf_talkface.stream import streamer_for

    y = speech["test1.flac"]
    off = python_path_predict(loud_model, y)
    # the level of the input does not change the prediction (peak-normalised models: it does)
    assert np.abs(python_path_predict(loud_model, y * 0.25) - off).max() < 1e-3
    loaded = load_model(export_model(loud_model, tmp_path / "loud" / "1"))
    assert loaded.card["input_level"]["mode"] == "loudness"
    assert np.abs(loaded.predict(y) - off).max() < 1e-4
    causal = python_path_predict(loud_model, y, causal=True)
    for streamer in (streamer_for(loud_model), loaded.streamer()):
        out = [streamer.push(y[i:i + 777]) for i in range(0, len(y), 777)] + [streamer.flush()]
        assert np.abs(np.concatenate(out) - causal).max() < 1e-4
