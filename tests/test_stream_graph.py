"""SavedModel streaming signatures (stream_init / stream_step / stream_flush; state in, state
out): exported, reloaded and driven as a server would, on real speech. The frames equal
offline generation and the Python Streamer for any chunking, with the same emission schedule."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.export import export_model, load_trained, python_path_predict
from tf_talkface.stream import streamer_for
from tf_talkface.stream_graph import STATE_PREFIX, SignatureStreamer

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5



@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint):
    """name -> (TrainedModel, reloaded SavedModel module)."""
    out = {}
    for kind, name in (("lstm", "lstm_d1_c3_b16"), ("cnn", "cnn_nr2"), ("cnn_tc", "cnn_tc_nr")):
        m = load_trained(checkpoint(name))
        d = export_model(m, tmp_path_factory.mktemp(kind) / kind / "1")
        out[kind] = (m, tf.saved_model.load(str(d)))
    return out


@pytest.fixture(scope="module")
def speech(data_dir):
    from tf_talkface.audio.io import load_audio

    path = data_dir / "speech" / "test1.flac"
    return {sr: load_audio(path, sr) for sr in (44100, 8000)}


def _run(streamer, y, chunks):
    """Push ``y`` cut at the given chunk sizes (cycled); returns frames and emission sample
    counts (the number of samples pushed when each frame came out)."""
    streamer.reset()
    out, when, i, j = [], [], 0, 0
    while i < len(y):
        n = chunks[j % len(chunks)]
        f = streamer.push(y[i:i + n])
        i += n
        j += 1
        out.append(f)
        when += [min(i, len(y))] * len(f)
    out.append(streamer.flush())
    return np.concatenate(out), when


def test_signatures_and_state_names(exported):
    for kind, (m, module) in exported.items():
        sigs = module.signatures
        assert {"stream_init", "stream_step", "stream_flush"} <= set(sigs)
        init_out = set(sigs["stream_init"].structured_outputs)
        assert init_out and all(k.startswith(STATE_PREFIX) for k in init_out)
        step_in = set(sigs["stream_step"].structured_input_signature[1])
        assert step_in == init_out | {"audio"}
        assert set(sigs["stream_step"].structured_outputs) == init_out | {"landmarks"}
        assert set(sigs["stream_flush"].structured_input_signature[1]) == init_out
        # (no tensorflow-io op in any exported graph: tests/test_export.py reads saved_model.pb)


@pytest.mark.parametrize("kind", ["lstm", "cnn", "cnn_tc"])
def test_signature_stream_equals_offline_and_python_streamer(exported, speech, kind):
    m, module = exported[kind]
    sr = 44100 if kind == "lstm" else 8000
    y = speech[sr][:int(sr * 2.5) + 77]
    peak = 0.5
    if kind == "lstm":  # offline = the SavedModel's own whole-clip signature (float32 front-end)
        ref = module.signatures["full_length"](waveform=tf.constant(y[None]))["landmarks"].numpy()[0]
    else:
        ref = python_path_predict(m, y, peak=peak)
    sig = SignatureStreamer(module, kind, sr, m.delay, peak=peak)
    py = streamer_for(m, peak=peak)
    hop = 1764 if kind == "lstm" else 320
    for chunks in ([hop], [1, 999, 7, 5000], [len(y)]):
        out, when = _run(sig, y, chunks)
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= TOL, (kind, chunks)
        out_py, when_py = _run(py, y, chunks)
        assert when == when_py  # same emission schedule = same latency
        assert np.abs(out - out_py).max() <= TOL
    assert sig.frames_emitted == len(ref)
    assert (sig.latency_ms, sig.max_latency_ms) == (py.latency_ms, py.max_latency_ms)
    with pytest.raises(RuntimeError, match="flushed"):
        sig.push(y[:10])


def test_short_and_empty_streams(exported, speech):
    for kind, (m, module) in exported.items():
        sr = 44100 if kind == "lstm" else 8000
        sig = SignatureStreamer(module, kind, sr, m.delay)
        assert sig.flush().shape == (0, 68, 2)  # nothing pushed: nothing out
        sig.reset()
        assert sig.push(np.zeros(0, np.float32)).shape == (0, 68, 2)
        y = speech[sr][sr:sr + 2000]
        out, _ = _run(sig, y, [333])
        np.testing.assert_allclose(out, python_path_predict(m, y, peak=1.0), atol=TOL)


def test_state_is_plain_tensors_a_server_can_store(exported, speech):
    """A session survives a round trip of its state through numpy (what a session store or
    the REST API does)."""
    m, module = exported["lstm"]
    y = speech[44100][:44100]
    sigs = module.signatures
    state = sigs["stream_init"](peak=tf.constant(1.0))
    frames = []
    for i in range(0, len(y), 4410):
        out = sigs["stream_step"](audio=tf.constant(y[i:i + 4410]), **state)
        state = {k: tf.constant(v.numpy()) for k, v in out.items() if k.startswith(STATE_PREFIX)}
        frames.append(out["landmarks"].numpy())
    frames.append(sigs["stream_flush"](**state)["landmarks"].numpy())
    np.testing.assert_allclose(np.concatenate(frames), python_path_predict(m, y), atol=1e-4)


def test_old_export_without_streaming_signatures_is_refused():
    class Fake:
        signatures = {"serving_default": None}

    with pytest.raises(ValueError, match="no streaming signature"):
        SignatureStreamer(Fake(), "cnn", 8000)


def test_bundled_models_stream_through_their_signatures(speech, tmp_path, capsys, checkpoint):
    """The committed SavedModels carry the streaming signatures; ``open_streamer`` and the CLI
    run them (default: the bundled default model, as generate)."""
    from tf_talkface.saved_model import load_model
    from tf_talkface.stream import main, open_streamer

    y8 = speech[8000][:8000 * 2]
    s = open_streamer()  # bundled default (CNN)
    assert isinstance(s, SignatureStreamer) and s.sample_rate == 8000
    out, _ = _run(s, y8, [640])
    from tf_talkface.card import default_model_dir, read_card

    source = Path(read_card(default_model_dir())["source"]).stem  # checkpoint it came from
    ref = python_path_predict(load_trained(checkpoint(source)), y8, causal=True)
    assert np.abs(out - ref).max() <= TOL
    lstm = load_model(ROOT / "saved_models" / "lstm_grid_s1")
    assert lstm.card["streaming"]["latency_ms"] == pytest.approx(60.0)
    assert set(lstm.card["streaming"]["state"]) == set(
        lstm.module.signatures["stream_init"].structured_outputs)
    y44 = speech[44100][:44100 * 2]
    out, _ = _run(lstm.streamer(), y44, [1764])
    ref = lstm.predict(y44)
    assert np.abs(out - ref).max() <= TOL
    # CLI on a SavedModel folder
    from tf_talkface.audio.io import write_wav

    wav = write_wav(tmp_path / "in.wav", y44, 44100, subtype="FLOAT")
    npy = tmp_path / "out" / "lm.npy"
    assert main(["-m", str(ROOT / "saved_models" / "lstm_grid_s1"), "-i", str(wav),
                 "--chunk", "1000", "-o", str(npy)]) == 0
    assert np.abs(np.load(npy) - ref).max() <= TOL
    assert "latency 60.000 ms" in capsys.readouterr().out


def test_long_audio_goes_through_the_stream_in_chunks(data_dir, monkeypatch):
    """LoadedModel.predict on audio above its one-call limit runs the streaming signatures in
    chunks and equals the one-call result (CNN: the clip's own peak). Which path ran is
    recorded (a spy on stream_in_chunks), and memory is measured: the chunked path never copies
    the whole clip (tracemalloc peak below the waveform's size), the one-call path does."""
    import tracemalloc

    import tf_talkface.saved_model as SM
    from tf_talkface.audio.io import load_audio

    calls = []
    real = SM.stream_in_chunks

    def spy(streamer, w, chunk_seconds):
        calls.append(chunk_seconds)
        return real(streamer, w, chunk_seconds)

    monkeypatch.setattr(SM, "stream_in_chunks", spy)

    def measured(fn):
        tracemalloc.start()
        try:
            out = fn()
            return out, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    for name in ("cnn_nr_grid_s1", "lstm_grid_s1"):
        m = SM.load_model(ROOT / "saved_models" / name)
        y = load_audio(data_dir / "speech" / "obama.wav", m.sample_rate)
        y = (np.tile(y, 3)[:int(m.sample_rate * 100.5)] * 0.7).astype(np.float32)  # 100.5 s
        m.predict(y[:m.sample_rate * 3], chunk_seconds=1.0)  # trace the graphs outside the measure
        calls.clear()
        chunked, peak_chunked = measured(lambda: m.predict(y, chunk_seconds=30.0))
        assert calls == [30.0], name  # the chunked path ran
        one_go, peak_one_go = measured(lambda: m.predict(y, chunk_seconds=float("inf")))
        assert calls == [30.0], name  # and the one-call path did not
        assert chunked.shape == one_go.shape == (m.frames_for_samples(len(y)), 68, 2)
        if m.card.get("input_level", {}).get("mode") == "loudness":
            # the long path of a loudness model is one causal stream of the file
            s = m.streamer()
            whole = np.concatenate([s.push(y), s.flush()])
            assert np.abs(chunked - whole).max() <= TOL, name
            assert np.abs(chunked - one_go).max() < 0.1 * np.abs(one_go).max(), name
        else:
            assert np.abs(chunked - one_go).max() <= TOL, name
        # measured (CNN, 100.5 s at 8 kHz): chunked 2.7 MB (the result list + its concatenation,
        # 2 x 1.37 MB), the waveform 3.2 MB, one call 6.4 MB (two copies of it). Before the
        # peak was read without |y| (streaming_peak), the chunked path peaked at 4.1 MB.
        assert peak_chunked < y.nbytes < peak_one_go, (name, peak_chunked, y.nbytes, peak_one_go)
