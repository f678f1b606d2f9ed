"""tf_talkface.audio: decoding, 2018 log-mel delta features (numpy + Keras layers), NR noise mixing.

Real-data tests use the ``data_dir`` fixture (skip when ../shared/data is absent).
"""
from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
import keras

from tf_talkface.audio.features import (
    add_context, delta_features, log_mel_spectrogram, logmel_delta_features, min_samples)
from tf_talkface.audio.layers import ContextStack, LogMelDeltas
from tf_talkface.audio.io import AudioError, is_silent, load_audio, media_info, rms_dbfs, write_wav
from tf_talkface.audio.noise import (
    GAIN_DB, SNR_DB, NoiseBank, apply_gain_db, measure_snr_db, mix_at_snr, noise_segment,
    tf_mix_at_snr)
from tf_talkface.config import LogMelConfig
from tf_talkface.resources import ffmpeg_exe

CFG = LogMelConfig()


@pytest.fixture(scope="module")
def grid_clip(data_dir):
    return data_dir / "grid" / "s1" / "bbaf2n.mp4"


@pytest.fixture(scope="module")
def speech44(data_dir):
    """Real 44.1 kHz speech (F03C.wav, first 8 s)."""
    return load_audio(data_dir / "speech" / "F03C.wav", 44100)[: 8 * 44100]


# ------------------------------------------------------------------------------------ io


def test_load_grid_mp4(grid_clip):
    info = media_info(grid_clip)
    assert info["has_audio"] and info["has_video"]
    assert info["audio_sample_rate"] == 44100 and info["video_fps"] == 25.0
    y = load_audio(grid_clip, 44100)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.abs(y).max() <= 1.0 and not is_silent(y)
    assert abs(len(y) / 44100 - 3.0) < 0.05  # AAC track of a 75-frame clip: 2.978 s
    assert logmel_delta_features(y).shape == (75, 128)  # one feature row per video frame
    y8 = load_audio(grid_clip, 8000)
    assert len(y8) == math.ceil(len(y) * 8000 / 44100)


def test_load_flac_and_resample(data_dir):
    path = data_dir / "speech" / "test1.flac"
    ref, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    y = load_audio(path, 16000)  # native rate: bit-exact decoding
    np.testing.assert_array_equal(y, ref)
    y8 = load_audio(path, 8000)
    assert y8.dtype == np.float32 and len(y8) == math.ceil(len(ref) / 2)
    y44 = load_audio(path, 44100)
    assert len(y44) == math.ceil(len(ref) * 44100 / 16000)
    assert abs(rms_dbfs(y8) - rms_dbfs(ref)) < 0.2


def test_load_stereo_video_averages_channels(data_dir):
    """GRID misc clips are MPEG-1 with stereo MP2: mono = (L + R) / 2 as librosa.load."""
    path = data_dir / "grid" / "misc" / "bbaf2n.mpg"
    assert media_info(path)["audio_channels"] == "stereo"
    raw = subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-vn",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    lr = np.frombuffer(raw, "<f4").reshape(-1, 2)
    y = load_audio(path, 44100)
    np.testing.assert_allclose(y, np.clip(lr.mean(axis=1), -1, 1), atol=1e-6)


def _ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def test_audio_errors(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav.*not found"):
        load_audio(missing, 8000)

    silent_video = tmp_path / "noaudio.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=1", "-an", str(silent_video))
    with pytest.raises(AudioError, match="noaudio.mp4.*no audio stream"):
        load_audio(silent_video, 8000)
    assert media_info(silent_video)["has_audio"] is False

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="corrupt.wav.*not a readable audio"):
        load_audio(corrupt, 8000)

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        load_audio(empty, 8000)

    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="zero.wav.*zero samples"):
        load_audio(zero, 16000)
    assert issubclass(AudioError, ValueError)


def test_write_wav_atomic_roundtrip_and_levels(tmp_path):
    t = np.arange(8000) / 8000
    y = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = write_wav(tmp_path / "sub" / "tone.wav", y, 8000)
    assert [p.name for p in out.parent.iterdir()] == ["tone.wav"]  # no temp file left behind
    back = load_audio(out, 8000)
    np.testing.assert_allclose(back, y, atol=1 / 32768 + 1e-6)  # PCM_16
    assert abs(rms_dbfs(y) - 20 * np.log10(0.5 / np.sqrt(2))) < 0.01
    assert is_silent(np.zeros(100)) and is_silent(1e-4 * y) and not is_silent(y)
    assert rms_dbfs(np.zeros(0)) == float("-inf")


# ------------------------------------------------------------------------------ features


def _independent_logmel(y: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """Reference without librosa.stft: own reflect-padded framing, periodic Hann, np.fft.rfft."""
    import librosa

    x = np.pad(y.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    mag = np.abs(np.fft.rfft(x[idx] * window, axis=1)) / (1 + n_fft / 2)
    mel = mag ** 2 @ librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64).T
    return np.log(1e-16 + mel)


def test_logmel_matches_independent_computation(speech44, grid_clip):
    for y in (speech44, load_audio(grid_clip, 44100)):
        lm = log_mel_spectrogram(y, CFG)
        ref = _independent_logmel(y, 44100, 1764, 1764, 64)
        assert lm.shape == ref.shape == (1 + len(y) // 1764, 64) and lm.dtype == np.float32
        # the package stores the STFT as complex64 like librosa: ~1e-7 relative -> ~1e-6 in log
        np.testing.assert_allclose(lm, ref, atol=2e-4)
        feats = logmel_delta_features(y, CFG)
        d1 = np.diff(ref, axis=0)
        np.testing.assert_allclose(feats[1:, :64], d1, atol=5e-4)
        np.testing.assert_allclose(feats[2:, 64:], np.diff(d1, axis=0), atol=1e-3)


@pytest.mark.filterwarnings("ignore:n_fft=1764 is too large")
def test_feature_shapes_and_zero_rows(speech44):
    y = speech44[: 44100 * 2 + 123]
    f = logmel_delta_features(y)
    assert f.shape == (1 + len(y) // 1764, 128) and f.dtype == np.float32
    lm = log_mel_spectrogram(y)
    assert np.all(f[0] == 0)                      # delta and delta-delta: zero first row
    assert np.all(f[1, 64:] == 0)                 # delta-delta: two zero rows
    np.testing.assert_array_equal(f[1, :64], lm[1] - lm[0])
    np.testing.assert_array_equal(f[2, 64:], (lm[2] - lm[1]) - (lm[1] - lm[0]))
    assert not np.all(f[2] == 0)
    # shortest accepted input: n_fft // 2 + 1 = 883 samples -> 1 frame
    assert min_samples(CFG) == 883
    assert logmel_delta_features(y[:883]).shape == (1, 128)
    with pytest.raises(ValueError, match="882 samples"):
        logmel_delta_features(y[:882])
    assert delta_features(lm[:2]).shape == (2, 128)


def _original_add_context(mel, ctx_win):
    """Literal port of the original utils.addContext."""
    ctx = mel[:, :]
    filler = mel[0, :]
    for _ in range(ctx_win):
        mel = np.insert(mel, 0, filler, axis=0)[:-1, :]
        ctx = np.append(ctx, mel, axis=1)
    return ctx


def test_add_context_order_and_first_frame_repeat():
    x = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=np.float32)
    expected = np.array([
        [1, 2, 1, 2, 1, 2],
        [3, 4, 1, 2, 1, 2],
        [5, 6, 3, 4, 1, 2],
        [7, 8, 5, 6, 3, 4],
    ], dtype=np.float32)
    np.testing.assert_array_equal(add_context(x, 2), expected)
    assert add_context(x, 0) is x or np.array_equal(add_context(x, 0), x)
    r = np.random.default_rng(1).normal(size=(6, 5))
    for c in (1, 3, 8):  # 8 > frames: everything before t=0 is the first frame
        np.testing.assert_array_equal(add_context(r, c), _original_add_context(r, c))
    with pytest.raises(ValueError):
        add_context(x, -1)


def test_logmel_deltas_layer_matches_numpy(speech44, grid_clip):
    layer = LogMelDeltas()
    for y, max_tol in ((speech44, 1e-3), (load_audio(grid_clip, 44100), 5e-3)):
        ref = logmel_delta_features(y)
        out = layer(y[None])[0].numpy()
        assert out.shape == ref.shape and out.dtype == np.float32
        diff = np.abs(out - ref)
        # TF's FFT is float32 (numpy/librosa: float64); the error is ~1e-7 of the frame's energy,
        # so only bands far below the frame peak (log-mel < -30, near the 1e-16 floor; the AAC
        # clip is low-passed) differ by > 1e-4 in the log. Measured max: 5.6e-4 (F03C.wav),
        # 3.9e-3 (GRID AAC); mean ~1e-5.
        assert diff.max() < max_tol, diff.max()
        assert diff.mean() < 5e-5, diff.mean()
        assert np.all(out[0] == 0) and np.all(out[1, 64:] == 0)


def test_logmel_deltas_symbolic_and_config_roundtrip(speech44, tmp_path):
    y = np.stack([speech44[:44100], speech44[44100:88200]])
    inp = keras.Input(shape=(None,), dtype="float32")
    model = keras.Model(inp, ContextStack(2)(LogMelDeltas(name="feat")(inp)))
    out = model(y).numpy()
    assert out.shape == (2, 1 + 44100 // 1764, 128 * 3)
    for b in range(2):
        np.testing.assert_allclose(out[b], add_context(logmel_delta_features(y[b]), 2), atol=1e-3)

    layer = model.get_layer("feat")
    cfg = layer.get_config()
    assert cfg["sample_rate"] == 44100 and cfg["n_mels"] == 64 and cfg["log_floor"] == 1e-16
    clone = LogMelDeltas.from_config(cfg)
    np.testing.assert_array_equal(clone(y).numpy(), layer(y).numpy())
    restored = keras.Model.from_config(model.get_config())
    np.testing.assert_array_equal(restored(y).numpy(), out)
    assert LogMelDeltas.from_logmel_config(LogMelConfig(sample_rate=8000)).get_config()["sample_rate"] == 8000

    # graph with unknown batch and length, as in a SavedModel signature
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    assert fn.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 128]
    # graph vs eager: same ops, grappler may reorder float32 sums (measured max 7.6e-6)
    np.testing.assert_allclose(fn(tf.constant(y)).numpy(), layer(y).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="too short"):
        LogMelDeltas()(keras.Input(shape=(100,)))


def test_feature_layers_savedmodel_and_keras_file(tmp_path):
    """Exported for TF Serving: core TF ops only (no tensorflow-io), unknown batch and length."""
    from tensorflow.core.protobuf import saved_model_pb2

    inp = keras.Input(shape=(None,), dtype="float32")
    model = keras.Model(inp, ContextStack(3)(LogMelDeltas()(inp)))
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 20000)).astype(np.float32)
    expected = model(x).numpy()
    model.export(str(tmp_path / "sm"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "sm")).serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-4)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((tmp_path / "sm" / "saved_model.pb").read_bytes())
    ops = {n.op for mg in proto.meta_graphs for f in mg.graph_def.library.function for n in f.node_def}
    assert "RFFT" in ops and not any(op.startswith("IO>") for op in ops)

    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded(x).numpy(), expected)


def test_context_stack_equals_add_context():
    x = np.random.default_rng(2).normal(size=(3, 11, 7)).astype(np.float32)
    for c in (0, 1, 3, 12):
        layer = ContextStack(c)
        out = layer(x).numpy()
        assert out.shape == (3, 11, 7 * (c + 1))
        for b in range(3):
            np.testing.assert_array_equal(out[b], add_context(x[b], c))
        assert ContextStack.from_config(layer.get_config()).context == c
    fn = tf.function(ContextStack(3), input_signature=[tf.TensorSpec([None, None, 7], tf.float32)])
    np.testing.assert_array_equal(fn(x).numpy()[1], add_context(x[1], 3))


# ---------------------------------------------------------------------------------- noise


def test_constants():
    assert GAIN_DB == (-12, -9, -6, -3, 0, 3, 6)
    assert SNR_DB == (6, 9, 12, 15, 18, 21, 24, 27, 30)


def test_mix_at_snr_real_speech_and_noise(data_dir):
    speech = load_audio(data_dir / "speech" / "test1.flac", 8000)[: 4 * 8000]
    noise = load_audio(data_dir / "noise" / "factory1.wav", 8000)
    rng = np.random.default_rng(0)
    for snr in (-10, -3, 0, 6, 15, 30):
        seg = noise_segment(noise, len(speech), rng)
        noisy = mix_at_snr(speech, seg, snr)
        assert noisy.dtype == np.float32 and noisy.shape == speech.shape
        assert abs(measure_snr_db(speech, noisy) - snr) < 0.1
        tf_noisy = tf_mix_at_snr(speech, seg, float(snr)).numpy()
        np.testing.assert_allclose(tf_noisy, noisy, atol=1e-5)
    # batched in-graph mixing, one SNR per row
    segs = np.stack([noise_segment(noise, len(speech), o) for o in (0, 1000)])
    batch = tf_mix_at_snr(np.stack([speech, speech]), segs, tf.constant([0.0, 12.0])).numpy()
    assert abs(measure_snr_db(speech, batch[0]) - 0) < 0.1
    assert abs(measure_snr_db(speech, batch[1]) - 12) < 0.1
    g = apply_gain_db(speech, -6)
    assert abs(rms_dbfs(g) - rms_dbfs(speech) + 6) < 1e-3
    with pytest.raises(ValueError, match="all zeros"):
        mix_at_snr(speech, np.zeros_like(speech), 10)


def test_noise_segment_offsets_and_tiling():
    noise = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(noise_segment(noise, 4, 3), [3, 4, 5, 6])
    np.testing.assert_array_equal(noise_segment(noise, 13, 8), [8, 9] + list(range(10)) + [0])
    rng = np.random.default_rng(0)
    for _ in range(50):
        seg = noise_segment(noise, 6, rng)
        assert np.all(np.diff(seg) == 1)  # long enough: never wraps


def test_noise_bank_from_dir(data_dir):
    folder = data_dir / "noise"
    bank = NoiseBank.from_dir(folder, 8000)
    assert bank.num_files == 8 and bank.sample_rate == 8000
    lengths = bank.lengths.numpy()
    for name, n in zip(bank.names, lengths):
        info = sf.info(folder / name)
        assert info.samplerate == 22050
        assert n == math.ceil(info.frames * 8000 / 22050)
    assert sum(abs(n - 20 * 8000) <= 1 for n in lengths) >= 7  # 20 s files (one is 14.96 s)
    white_tfio = bank.waveform(bank.names.index("white.wav"))
    white_ffmpeg = load_audio(folder / "white.wav", 8000)  # ffmpeg + soxr_hq decoder
    assert len(white_tfio) == len(white_ffmpeg)
    # tfio's anti-alias low-pass starts earlier than soxr_hq's: white noise (flat up to 11 kHz)
    # loses 0.21 dB more with tfio (ideal brick-wall at 4 kHz: -36.78 dBFS; soxr -37.03; tfio -37.25)
    assert abs(rms_dbfs(white_tfio) - rms_dbfs(white_ffmpeg)) < 0.5

    seg = bank.sample(24000)
    assert seg.shape == (24000,) and seg.dtype == tf.float32
    flat = bank.flat.numpy()
    s = seg.numpy()
    hits = np.flatnonzero(flat == s[0])
    assert any(np.array_equal(flat[h:h + 24000], s) for h in hits)  # a contiguous real segment
    others = [bank.sample(24000).numpy() for _ in range(3)]
    assert not all(np.array_equal(s, o) for o in others)
    a = bank.sample(1000, seed=tf.constant([3, 4]))
    b = bank.sample(1000, seed=tf.constant([3, 4]))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert bank.sample(200_000).shape == (200_000,)  # longer than any file: tiled


def test_noise_bank_in_tf_data_graph():
    bank = NoiseBank([np.arange(10, dtype=np.float32) + 1], 8000)
    seg = bank.sample(25, seed=tf.constant([1, 2])).numpy()
    assert np.array_equal(seg[10:20], seg[:10]) and np.array_equal(seg[20:], seg[:5])
    assert sorted(seg[:10]) == list(range(1, 11))

    speech = np.sin(np.arange(800) / 5).astype(np.float32)
    ds = tf.data.Dataset.from_tensors(speech).repeat(20).map(lambda x: bank.nr_pair(x))
    gains, snrs = set(), set()
    for clean, noisy in ds:
        g = rms_dbfs(clean.numpy()) - rms_dbfs(speech)
        gains.add(int(round(g)))
        snrs.add(int(round(measure_snr_db(clean.numpy(), noisy.numpy()))))
    assert gains <= set(GAIN_DB) and snrs <= set(SNR_DB) and len(snrs) > 1


def test_noise_bank_errors(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path.name) + ".*no audio files"):
        NoiseBank.from_dir(tmp_path, 8000)
    (tmp_path / "readme.txt").write_text("not audio")
    with pytest.raises(ValueError, match="no audio files"):
        NoiseBank.from_dir(tmp_path, 8000)
    (tmp_path / "broken.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(AudioError, match="broken.wav"):
        NoiseBank.from_dir(tmp_path, 8000)
    with pytest.raises(FileNotFoundError, match="nope"):
        NoiseBank.from_dir(tmp_path / "nope", 8000)
    with pytest.raises(ValueError):
        NoiseBank([], 8000)
