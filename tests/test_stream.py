"""Streaming inference (tf_talkface.stream) on real speech: equality with offline generation for
any chunking (1 sample, odd sizes, whole file), emission schedule = the stated latency, peak
normalisation, state handling, memory-bounded long generation (10 minutes), the CLI."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_talkface.export import _serving_fns, load_trained, python_path_predict
from tf_talkface.stream import CNNStreamer, LSTMStreamer, generate_long, main, streamer_for

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "saved_models" / "checkpoints"
TOL = 1e-5
CHUNKS = [7, 1763, 1764, 5000, None]  # None = the whole file in one push



@pytest.fixture(scope="module")
def models(checkpoint):
    return {k: load_trained(checkpoint(n)) for k, n in
            (("lstm", "lstm_d1_c3_b16"), ("cnn", "cnn_nr2"), ("cnn_tc", "cnn_tc_nr"))}


@pytest.fixture(scope="module")
def speech(data_dir):
    from tf_talkface.audio.io import load_audio

    path = data_dir / "speech" / "test1.flac"
    return {sr: load_audio(path, sr) for sr in (44100, 8000)}


@pytest.fixture(scope="module")
def lstm_offline(models):
    """The exported SavedModel's in-graph path (full_length signature), traced once."""
    fn = tf.function(_serving_fns(models["lstm"])["full_length"][0], autograph=False,
                     input_signature=[tf.TensorSpec([None, None], tf.float32)])
    return lambda y: fn(tf.constant(np.asarray(y, np.float32)[None]))["landmarks"].numpy()[0]


def _stream(s, y, chunk, log=None):
    s.reset()
    chunk = chunk or max(1, len(y))
    out = []
    for i in range(0, len(y), chunk):
        f = s.push(y[i:i + chunk])
        assert f.dtype == np.float32 and f.shape[1:] == (68, 2)
        if log is not None and len(f):
            log += [i + chunk] * len(f)
        out.append(f)
    out.append(s.flush())
    return np.concatenate(out)


def test_lstm_stream_equals_offline_any_chunking(models, speech, lstm_offline):
    m = models["lstm"]
    y = speech[44100][:44100 * 3 + 1234]  # 3 s, not a multiple of the hop
    ref = lstm_offline(y)
    assert np.abs(ref - python_path_predict(m, y)).max() < 1e-4  # numpy front-end (float64 FFT)
    s = streamer_for(m)
    assert isinstance(s, LSTMStreamer)
    for chunk in CHUNKS:
        out = _stream(s, y, chunk)
        assert out.shape == ref.shape == (1 + len(y) // 1764, 68, 2)
        assert np.abs(out - ref).max() <= TOL, chunk
    # irregular chunks, empty ones included
    rng = np.random.default_rng(0)
    s.reset()
    cuts = np.sort(rng.integers(0, len(y), 40))
    out = np.concatenate([s.push(p) for p in np.split(y, cuts)] + [s.flush()])
    assert np.abs(out - ref).max() <= TOL
    # fixed signatures: one trace whatever the chunk sizes
    assert s._run.experimental_get_tracing_count() == 1
    assert s._logmel.experimental_get_tracing_count() == 1


def test_lstm_one_sample_chunks_and_emission_schedule(models, speech, lstm_offline):
    m = models["lstm"]
    y = speech[44100][44100 * 2: 44100 * 2 + 13230]  # 0.3 s of speech
    ref = lstm_offline(y)
    s = LSTMStreamer(m)
    when = []
    out = _stream(s, y, 1, when)
    assert np.abs(out - ref).max() <= TOL
    # frame t is emitted as soon as sample (t + delay)*hop + n_fft/2 has arrived (input frame 0
    # needs one more for its start reflection): the stated latency, exactly
    hop, half, d = 1764, 882, m.delay
    expect = [max((t + d) * hop + half, half + 1) for t in range(len(when))]
    assert when == expect
    assert len(when) == len(ref) - d  # the last `delay` frames come at flush
    assert s.latency_ms == pytest.approx(d * 40 + 20)
    assert s.max_latency_ms == pytest.approx(d * 40 + 40)


@pytest.mark.parametrize("kind", ["cnn", "cnn_tc"])
def test_cnn_stream_equals_offline_any_chunking(models, speech, kind):
    m = models[kind]
    y = speech[8000][:8000 * 3 + 77]
    peak = 0.5  # fixed normalisation, given to the offline path too
    ref = python_path_predict(m, y, peak=peak)
    s = streamer_for(m, peak=peak)
    assert isinstance(s, CNNStreamer)
    for chunk in CHUNKS:
        out = _stream(s, y, chunk)
        assert out.shape == ref.shape == (-(-len(y) // 320), 68, 2)
        assert np.abs(out - ref).max() <= TOL, (kind, chunk)
    assert s._run.experimental_get_tracing_count() == 1
    # with the clip's own peak the streamer reproduces the paper's (default) offline path
    s2 = CNNStreamer(m, peak=float(np.max(np.abs(y))))
    assert np.abs(_stream(s2, y, 999) - python_path_predict(m, y)).max() <= TOL


def test_pad_and_scale_fixed_peak(speech):
    from tf_talkface.models.cnn import pad_and_scale, pad_and_scale_tf

    y = speech[8000][:5000]
    a = pad_and_scale(y, peak=0.25)
    np.testing.assert_allclose(a[1120:1120 + 5000], y / 0.25, rtol=1e-6)
    np.testing.assert_allclose(pad_and_scale_tf(y, peak=0.25).numpy(), a, rtol=1e-6, atol=1e-7)
    # default unchanged: the clip's own peak
    assert np.abs(pad_and_scale(y)).max() == pytest.approx(1.0)
    assert np.abs(pad_and_scale_tf(y).numpy()).max() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        pad_and_scale(y, peak=0.0)


def test_cnn_one_sample_chunks_and_emission_schedule(models, speech):
    m = models["cnn_tc"]
    y = speech[8000][8000 * 2: 8000 * 2 + 2400]  # 0.3 s
    ref = python_path_predict(m, y, peak=1.0)
    s = CNNStreamer(m)
    when = []
    out = _stream(s, y, 1, when)
    assert np.abs(out - ref).max() <= TOL
    # frame t needs raw samples up to 320 t + 1117 (the trunk reads 2237 of the 2240 window)
    assert when == [320 * t + 1117 for t in range(len(when))]
    assert s.latency_ms == pytest.approx(1117 / 8)
    assert s.max_latency_ms == pytest.approx(2237 / 8)


def test_state_reset_and_edge_cases(models, speech):
    m = models["lstm"]
    s = LSTMStreamer(m)
    y = speech[44100][:44100]
    a = _stream(s, y, 4000)
    with pytest.raises(RuntimeError):
        s.push(y[:10])
    s.reset()
    b = _stream(s, y, 4000)
    np.testing.assert_array_equal(a, b)
    s.reset()
    s.push(y[:500])  # shorter than n_fft/2 + 1: no frame (the offline path refuses it)
    assert s.flush().shape == (0, 68, 2)
    c = CNNStreamer(models["cnn"])
    assert c.push(np.zeros(0, np.float32)).shape == (0, 68, 2)
    assert c.flush().shape == (0, 68, 2)
    with pytest.raises(ValueError):
        CNNStreamer(models["cnn"], peak=0.0)
    with pytest.raises(ValueError):
        LSTMStreamer(models["cnn"])


def test_generate_long_10_minutes_equals_one_go(models, data_dir, lstm_offline):
    """10 minutes of real speech (4 recordings tiled): chunked generation with carried state
    equals the one-go in-graph pass (which needs the whole 10-minute buffer; generate_long holds
    only one 30-s chunk of audio and features at a time)."""
    from tf_talkface.audio.io import load_audio

    sr = 44100
    parts = [load_audio(data_dir / "speech" / f, sr) for f in
             ("F03C.wav", "M02_CID_Sentences_List_A.wav", "obama.wav", "test.wav")]
    speech_all = np.concatenate(parts)
    n = 600 * sr + 321
    y = np.tile(speech_all, -(-n // len(speech_all)))[:n]
    m = models["lstm"]
    out = generate_long(m, y, chunk_seconds=30)
    ref = lstm_offline(y)
    assert out.shape == ref.shape == (1 + n // 1764, 68, 2)
    assert np.abs(out - ref).max() <= TOL


def test_generate_long_cnn_default_peak_is_the_clip_peak(models, speech):
    m = models["cnn"]
    y = speech[8000]
    out = generate_long(m, y, chunk_seconds=2.3, peak=None)
    assert np.abs(out - python_path_predict(m, y)).max() <= TOL


def test_cli_wav_and_stdin(models, speech, tmp_path, capsys, monkeypatch):
    from tf_talkface.audio.io import write_wav

    y = speech[8000][:8000 * 2 + 55]
    wav = tmp_path / "a.wav"
    write_wav(wav, y, 8000, subtype="FLOAT")
    ref = python_path_predict(models["cnn"], y, peak=1.0)
    out = tmp_path / "a.npy"
    assert main(["-m", str(CKPT / "cnn_nr2.json"), "-i", str(wav), "--chunk", "333",
                 "-o", str(out), "-v"]) == 0
    assert np.abs(np.load(out) - ref).max() <= TOL
    err = capsys.readouterr().err
    assert "chunk 0: 333 samples -> 0 frames" in err and "flush ->" in err
    # raw int16 PCM on stdin, as a live source (read in 640-sample chunks)
    pcm = np.clip(np.round(y * 32767), -32768, 32767).astype("<i2")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm.tobytes())))
    out2 = tmp_path / "b.npy"
    assert main(["-m", str(CKPT / "cnn_nr2.json"), "-i", "-", "--format", "s16", "--chunk", "640",
                 "-o", str(out2)]) == 0
    ref2 = python_path_predict(models["cnn"], pcm.astype(np.float32) / 32768.0, peak=1.0)
    assert np.abs(np.load(out2) - ref2).max() <= TOL
    assert "frames" in capsys.readouterr().out


def test_cli_module_runs():
    r = subprocess.run([sys.executable, "-m", "tf_talkface.stream", "--help"], capture_output=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0 and b"--peak" in r.stdout
