"""``generate`` end to end on real speech with the bundled default model: npy frame counts,
mp4 streams and durations probed with ffmpeg, folders, resume, --save-npy/--load-npy, bad input."""
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tf_talkface.audio.io import load_audio, write_wav
from tf_talkface.generate import GenerateError, find_inputs, generate, load_npy, main
from tf_talkface.resources import ffmpeg_exe
from tf_talkface.saved_model import ModelError, default_model_dir, load_model


@pytest.fixture(scope="module")
def model():
    """The bundled default model: committed, so it must load (a ModelError fails the tests)."""
    return load_model(None)


def probe(path: Path) -> dict:
    """Streams and lengths of a media file (ffmpeg's stream list + a full decode count)."""
    import imageio_ffmpeg

    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True).stderr
    streams = re.findall(r"Stream #0:\d+.*?: (Video|Audio):", err)
    codecs = re.findall(r"Stream #0:\d+.*?: (?:Video|Audio): (\w+)", err)
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    fps = float(re.search(r"([\d.]+) fps", err).group(1))
    audio = load_audio(path, 16000)
    return {"streams": streams, "codecs": codecs, "frames": n_frames, "fps": fps,
            "audio_s": len(audio) / 16000}


def test_default_model_is_bundled_and_documented(model):
    assert default_model_dir() == model.path
    assert model.card["training_data"]["provenance"]["license"] == "CC BY 4.0"
    size = sum(f.stat().st_size for f in model.path.rglob("*") if f.is_file())
    assert size < 30e6, f"bundled model is {size / 1e6:.1f} MB"


def test_public_load_model(model):
    """``tf_talkface.load_model``: the loader itself; None = the bundled default, else any
    exported model folder (NAME or NAME/VERSION)."""
    import tf_talkface
    import tf_talkface.saved_model

    assert tf_talkface.load_model is tf_talkface.saved_model.load_model
    assert tf_talkface.load_model().path == model.path == default_model_dir()
    other = tf_talkface.load_model(model.path.parent)  # saved_models/NAME: its highest version
    assert other.path == model.path and other.card == model.card
    with pytest.raises(ModelError, match="model folder not found"):
        tf_talkface.load_model(model.path / "nope")


def test_generate_speech_file_end_to_end(model, data_dir, tmp_path):
    src = data_dir / "speech" / "test1.flac"  # 16 kHz FLAC, 15 s
    assert main(["-i", str(src), "-o", str(tmp_path), "--size", "256", "--quiet"]) == 0
    lm = np.load(tmp_path / "test1.npy")
    y = load_audio(src, model.sample_rate)
    duration = len(y) / model.sample_rate
    assert lm.shape == (model.frames_for_samples(len(y)), 68, 2) and lm.dtype == np.float32
    assert abs(len(lm) - duration * 25) <= 1
    np.testing.assert_allclose(lm, model.predict(y), atol=1e-6)
    p = probe(tmp_path / "test1.mp4")
    assert sorted(p["streams"]) == ["Audio", "Video"]
    assert sorted(p["codecs"]) == ["aac", "h264"]  # H.264 + AAC, as promised
    assert p["fps"] == 25 and p["frames"] == len(lm)
    assert abs(p["audio_s"] - duration) < 0.1
    # the mouth follows the speech: mouth opening in louder frames vs silent frames
    gap = lm[:, 66, 1] - lm[:, 62, 1]
    hop = model.sample_rate // 25
    rms = np.array([np.sqrt(np.mean(y[i * hop:(i + 1) * hop] ** 2)) if i * hop < len(y) else 0
                    for i in range(len(lm))])
    loud, quiet = rms > np.quantile(rms, 0.7), rms < np.quantile(rms, 0.2)
    assert gap[loud].mean() > gap[quiet].mean()


def test_video_input_and_folder_recursion_and_resume(model, data_dir, tmp_path):
    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    (inp / "a.wav").symlink_to(data_dir / "speech" / "audio_sample.wav")
    (inp / "sub" / "obama2s.mp4").symlink_to(data_dir / "video" / "obama2s.mp4")
    (inp / "notes.txt").write_text("not audio")
    assert [s for _, s in find_inputs(inp)] == [Path("a"), Path("sub/obama2s")]
    out = tmp_path / "out"
    rep = generate(inp, out, model, video="none", progress=False)
    assert not rep.failed and len(rep.written) == 2
    lm = np.load(out / "sub" / "obama2s.npy")
    y = load_audio(data_dir / "video" / "obama2s.mp4", model.sample_rate)
    assert len(lm) == model.frames_for_samples(len(y))
    assert not (out / "a.mp4").exists()
    rep2 = generate(inp, out, model, video="none", progress=False)  # resumes: nothing to redo
    assert len(rep2.skipped) == 2 and not rep2.written


def test_save_npy_then_load_npy(model, data_dir, tmp_path):
    src = data_dir / "speech" / "audio_sample.wav"
    assert main(["-i", str(src), "-o", str(tmp_path / "pred"), "--save-npy", "--quiet"]) == 0
    pred = tmp_path / "pred"
    assert (pred / "audio_sample.npy").is_file() and (pred / "audio_sample.wav").is_file()
    assert not (pred / "audio_sample.mp4").exists()
    # an external 3D landmark file animates too (the replication toolkit's use case)
    lm = np.load(pred / "audio_sample.npy")
    lm3 = np.concatenate([lm, np.zeros_like(lm[..., :1])], axis=-1)
    np.save(pred / "ext3d.npy", lm3)
    (pred / "ext3d.wav").symlink_to(pred / "audio_sample.wav")
    out = tmp_path / "anim"
    rep = generate(pred, out, load_npy_mode=True, video="lines", size=128, progress=False)
    assert not rep.failed, rep.failed
    rep3d = generate(pred / "ext3d.npy", out / "3d", load_npy_mode=True, video="3d", size=128,
                     progress=False)
    assert not rep3d.failed, rep3d.failed
    for f in (out / "audio_sample.mp4", out / "3d" / "ext3d.mp4"):
        p = probe(f)
        assert sorted(p["streams"]) == ["Audio", "Video"] and p["frames"] == len(lm)
        assert abs(p["audio_s"] - 6.0) < 0.1


def test_load_npy_errors(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((10, 20)))
    with pytest.raises(GenerateError, match=r"bad.npy.*\(10, 20\)"):
        load_npy(tmp_path / "bad.npy")
    np.save(tmp_path / "nowav.npy", np.zeros((10, 68, 2), np.float32))
    rep = generate(tmp_path / "nowav.npy", tmp_path / "o", load_npy_mode=True, progress=False)
    assert "nowav.wav" in rep.failed[tmp_path / "nowav.npy"]
    assert load_npy(tmp_path / "nowav.npy").shape == (10, 68, 2)


def test_bad_inputs_are_named_and_others_still_done(model, data_dir, tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "broken.wav").write_text("this is not audio")
    (inp / "empty.flac").write_bytes(b"")
    write_wav(inp / "silence.wav", np.zeros(44100, np.float32), 44100)
    write_wav(inp / "short.wav", np.full(100, 0.3, np.float32), 44100)
    (inp / "good.wav").symlink_to(data_dir / "speech" / "audio_sample.wav")
    out = tmp_path / "out"
    assert main(["-i", str(inp), "-o", str(out), "--video", "none", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"broken\.wav: not a readable audio", err)
    assert "empty.flac" in err and "empty" in err.split("empty.flac", 1)[1].splitlines()[0]
    assert re.search(r"silence\.wav: the audio is silent.*--allow-silent", err)
    if model.card["min_samples"] > 1:  # lstm: 883 samples at 44.1 kHz for the STFT padding
        assert re.search(r"short\.wav: audio too short", err)
    else:  # cnn: any sample gives a frame
        n = len(load_audio(inp / "short.wav", model.sample_rate))
        assert np.load(out / "short.npy").shape == (model.frames_for_samples(n), 68, 2)
    assert (out / "good.npy").is_file() and not (out / "broken.npy").exists()
    # --allow-silent: a neutral face of the right length
    assert main(["-i", str(inp / "silence.wav"), "-o", str(out), "--video", "none",
                 "--allow-silent", "--quiet"]) == 0
    lm = np.load(out / "silence.npy")
    assert lm.shape == (1 + 44100 // 1764 if model.card["model"] == "lstm" else 25, 68, 2)
    np.testing.assert_allclose(lm[0], np.asarray(model.card["neutral_face"]), atol=1e-6)
    assert np.ptp(lm, axis=0).max() == 0


def test_bad_model_and_style(data_dir, tmp_path, capsys):
    src = str(data_dir / "speech" / "audio_sample.wav")
    (tmp_path / "m").mkdir()
    assert main(["-i", src, "-o", str(tmp_path / "o"), "-m", str(tmp_path / "m")]) == 1
    assert "not a tf_talkface SavedModel" in capsys.readouterr().err
    assert main(["-i", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["-i", src, "-o", str(tmp_path / "o"), "--video", "cartoon"])
    rep = generate(src, tmp_path / "o", video="3d", progress=False)
    assert "needs 3D landmarks" in next(iter(rep.failed.values()))


def test_outputs_get_normal_file_permissions(tmp_path):
    from tf_talkface.generate import save_npy

    old = os.umask(0o022)
    try:
        f = save_npy(tmp_path / "x.npy", np.zeros((2, 68, 2), np.float32))
        w = write_wav(tmp_path / "x.wav", np.zeros(100, np.float32), 8000)
    finally:
        os.umask(old)
    assert f.stat().st_mode & 0o777 == 0o644 and w.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "x.wav"]  # no temp files left


def test_generate_with_the_lstm_model_and_overwrite_cli(data_dir, tmp_path, capsys):
    """Issue 12 C8: the bundled 2018 LSTM through generate (44.1 kHz input, 1 + n // 1764
    frames); the CLI's --overwrite redoes an input whose outputs exist."""
    lstm = Path(__file__).resolve().parents[1] / "saved_models" / "lstm_grid_s1"
    src = data_dir / "speech" / "audio_sample.wav"
    args = ["-i", str(src), "-o", str(tmp_path), "-m", str(lstm), "--video", "none", "--quiet"]
    assert main(args) == 0
    y = load_audio(src, 44100)
    lm = np.load(tmp_path / "audio_sample.npy")
    assert lm.shape == (1 + len(y) // 1764, 68, 2) and np.isfinite(lm).all()
    assert np.ptp(lm[:, 66, 1] - lm[:, 62, 1]) > 0  # the mouth moves
    capsys.readouterr()
    assert main(args) == 0 and "1 input(s) skipped" in capsys.readouterr().out
    np.save(tmp_path / "audio_sample.npy", np.zeros((3, 68, 2), np.float32))
    assert main(args + ["--overwrite"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "audio_sample.npy"), lm, atol=1e-6)
