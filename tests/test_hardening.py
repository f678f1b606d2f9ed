"""Issue 12 B (hardening): NaN never travels with exit 0, datasets are replaced only whole, OS
errors are one line naming the path, outputs of an input are swapped in together, stream's bad
input, model cards checked on load, quiet start-up, umask-respecting permissions, names with dots.

Mostly synthetic and in-process (fake models and streamers where the model is not the point);
the two subprocess tests run the real CLIs with the bundled model."""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tf_talkface.audio.io import AudioError, load_audio, write_wav
from tf_talkface.saved_model import LoadedModel, ModelError

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "saved_models" / "cnn_nr_grid_s1"


# ----------------------------------------------------------------------------- helpers

def _face(n: int, value: float = 0.5) -> np.ndarray:
    return np.full((n, 68, 2), value, np.float32)


class FakeModel(LoadedModel):
    """A LoadedModel without TensorFlow: ``predict`` returns ``face(frames)``."""

    def __init__(self, face=_face):
        card = {"model": "cnn", "sample_rate": 8000, "min_samples": 1, "name": "fake",
                "version": 1, "neutral_face": _face(1)[0].tolist()}
        super().__init__(path=Path("fake"), card=card, module=None)
        self.face = face

    def predict(self, waveform, chunk_seconds=120.0):
        return self.face(self.frames_for_samples(len(waveform)))


def _tone(path: Path, seconds: float = 0.5, sr: int = 8000) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    write_wav(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def _nan_wav(path: Path) -> Path:
    import soundfile as sf

    y = np.full(4000, 0.1, np.float32)
    y[100:200] = np.nan
    sf.write(path, y, 8000, subtype="FLOAT")
    return path


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _synthetic_dataset(path: Path, nan: bool = False) -> Path:
    """A 2018-recipe dataset of 3 train + 1 val short clips (features NaN with ``nan``)."""
    from tf_talkface.data.build import write_dataset
    from tf_talkface.data.records import ClipRecord

    rng = np.random.default_rng(0)
    recs = []
    for i, (t, split) in enumerate([(10, "train"), (12, "train"), (11, "train"), (10, "val")]):
        feats = rng.normal(size=(t, 128)).astype(np.float32)
        if nan:
            feats[2:5] = np.nan
        recs.append(ClipRecord(clip_id=f"v/{i}", speaker="v", split=split, source=f"{i}.mp4",
                               recipe="eskimez2018", audio=np.zeros(t * 1764, np.float32),
                               audio_sample_rate=44100, landmarks_raw=None,
                               landmarks=rng.uniform(size=(t, 68, 2)).astype(np.float32),
                               features=feats))
    manifest = {"format_version": 1, "recipe": {"name": "eskimez2018"},
                "schema": {"landmark_dim": 136, "feature_dim": 128, "n_pca": 0,
                           "audio_sample_rate": 44100, "hop": 1764, "raw_landmarks": False},
                "clips": [{"clip_id": r.clip_id, "num_frames": len(r.features)} for r in recs],
                "counts": {"train": 3, "val": 1, "test": 0}}
    path.mkdir(parents=True)
    write_dataset(path, manifest, iter(recs))
    return path


# ----------------------------------------------------------------------------- B1: NaN

def test_nan_training_exits_nonzero_and_leaves_nothing_to_export(tmp_path, capsys):
    from tf_talkface import export, train

    data = _synthetic_dataset(tmp_path / "nan_ds", nan=True)
    out = tmp_path / "run"
    rc = train.main(["--data", str(data), "--model", "lstm", "--out", str(out), "--units", "4",
                     "--epochs", "3", "--batch-size", "3", "--preset", "paper", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "training diverged" in err and "nan" in err.lower()
    assert not (out / "best.keras").exists() and not (out / "final.keras").exists()
    assert not (out / "metrics.json").exists()
    rc = export.main(["--run", str(out), "--out", str(tmp_path / "m" / "1")])
    assert rc == 1 and "no best.keras or final.keras" in capsys.readouterr().err
    assert not (tmp_path / "m" / "1").exists()


def test_export_refuses_non_finite_weights(checkpoint, tmp_path, capsys):
    from tf_talkface import export
    from tf_talkface.export import load_trained

    src = checkpoint("lstm_d1_c3")
    ck = tmp_path / "broken.json"
    shutil.copy(src, ck)
    net = load_trained(src).net
    w = net.weights[0]
    w.assign(np.full(w.shape, np.nan, np.float32))
    net.save_weights(tmp_path / "broken.weights.h5")
    assert export.main(["--checkpoint", str(ck), "--out", str(tmp_path / "m" / "1")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "broken.json: non-finite weights" in line
    assert not (tmp_path / "m" / "1").exists()


def test_generate_refuses_non_finite_audio_and_never_writes_non_finite_output(tmp_path):
    from tf_talkface.generate import generate, write_outputs, GenerateError

    wav = _tone(tmp_path / "in" / "ok.wav")
    rep = generate(wav, tmp_path / "out", FakeModel(lambda n: _face(n, np.nan)), video="none",
                   progress=False)
    assert "NaN/Inf" in rep.failed[wav] and not rep.written
    assert not list((tmp_path / "out").rglob("*.npy"))
    with pytest.raises(GenerateError, match="NaN/Inf"):  # the client's writer as well
        write_outputs(_face(3, np.inf), tmp_path / "out", "x", None, None, video="none")
    # non-finite audio: from a file, and handed to the model directly
    with pytest.raises(AudioError, match="NaN or Inf"):
        load_audio(_nan_wav(tmp_path / "nan.wav"), 8000)
    y = np.ones(800, np.float32)
    y[3] = np.nan
    with pytest.raises(ModelError, match="NaN/Inf"):
        LoadedModel(path=Path("x"), card=FakeModel().card, module=None).predict(y)
    with pytest.raises(ModelError, match="NaN/Inf"):
        LoadedModel(path=Path("x"), card=FakeModel().card, module=None).predict_batch([y])


def test_client_rejects_non_finite_server_output():
    from tf_talkface.client import ServingError, parse_rest_response

    lm = _face(4).tolist()
    ok = parse_rest_response({"outputs": {"landmarks": [lm], "frames": [4]}}, 1)
    assert ok[0].shape == (4, 68, 2)
    lm[2][10][0] = float("nan")
    with pytest.raises(ServingError, match="non-finite landmarks"):
        parse_rest_response({"outputs": {"landmarks": [lm], "frames": [4]}}, 1)
    # NaN beyond a row's valid frames is padding, not output
    assert parse_rest_response({"outputs": {"landmarks": [lm], "frames": [2]}}, 1)[0].shape[0] == 2


# ----------------------------------------------------------------------------- B6: stream input

class FakeStreamer:
    sample_rate = 8000
    latency_ms = 0.0

    def __init__(self, value: float = 0.5):
        self.n_samples = 0
        self.value = value

    def push(self, x):
        self.n_samples += len(x)
        return _face(len(x) // 320, self.value)

    def flush(self):
        return _face(1, self.value)


@pytest.fixture
def fake_stream(monkeypatch):
    import tf_talkface.stream as S

    made = []

    def open_fake(source=None, peak=1.0):
        made.append(FakeStreamer())
        return made[-1]

    monkeypatch.setattr(S, "open_streamer", open_fake)
    return S


def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stream_bad_inputs_are_one_line_and_write_nothing(fake_stream, tmp_path, capsys, monkeypatch):
    from tf_talkface.resources import ffmpeg_exe

    out = tmp_path / "o.npy"
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=gray:s=64x64:d=1:r=25", "-pix_fmt", "yuv420p",
                    str(tmp_path / "silent_video.mp4")], check=True)
    cases = {"missing.wav": "file not found", "empty.wav": "empty", "text.wav": "not a readable",
             "silent_video.mp4": "no audio stream", "nan.wav": "NaN or Inf"}
    _nan_wav(tmp_path / "nan.wav")
    for name, why in cases.items():
        assert fake_stream.main(["-i", str(tmp_path / name), "-o", str(out)]) == 1, name
        line = _one_line(capsys.readouterr().err)
        assert name in line and why in line, line
        assert not out.exists()
    # stdin: closed at once, and NaN samples
    _stdin(monkeypatch, b"")
    assert fake_stream.main(["-i", "-", "-o", str(out)]) == 1
    assert "stdin: no audio" in _one_line(capsys.readouterr().err) and not out.exists()
    x = np.full(2000, 0.1, np.float32)
    x[1500] = np.nan
    _stdin(monkeypatch, x.tobytes())
    assert fake_stream.main(["-i", "-", "-o", str(out), "--chunk", "640"]) == 1
    assert "chunk 2 holds 1 NaN/Inf" in _one_line(capsys.readouterr().err) and not out.exists()
    for bad in ("0", "-5"):
        assert fake_stream.main(["-i", "-", "-o", str(out), "--chunk", bad]) == 2
        assert "--chunk must be >= 1" in capsys.readouterr().err
    # a good stdin stream still works
    _stdin(monkeypatch, np.full(1600, 0.1, np.float32).tobytes())
    assert fake_stream.main(["-i", "-", "-o", str(out)]) == 0
    assert np.load(out).shape == (6, 68, 2)


def test_stream_refuses_non_finite_output_and_names_unwritable_output(fake_stream, tmp_path,
                                                                      capsys, monkeypatch):
    wav = _tone(tmp_path / "a.wav")
    monkeypatch.setattr(FakeStreamer, "flush", lambda self: _face(1, np.nan))
    assert fake_stream.main(["-i", str(wav), "-o", str(tmp_path / "o.npy")]) == 1
    assert "non-finite landmarks" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o.npy").exists()
    monkeypatch.undo()
    import tf_talkface.stream as S
    monkeypatch.setattr(S, "open_streamer", lambda source=None, peak=1.0: FakeStreamer())
    (tmp_path / "folder.npy").mkdir()  # -o an existing folder
    assert S.main(["-i", str(wav), "-o", str(tmp_path / "folder.npy")]) == 1
    assert "folder.npy" in _one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- B4, B5, B11: generate

def test_generate_os_errors_are_one_line_and_the_rest_go_on(tmp_path, capsys, monkeypatch):
    import tf_talkface.generate as G

    inp = tmp_path / "in"
    for n in ("a", "b", "c"):
        _tone(inp / f"{n}.wav")
    real = G.save_npy

    def full_disk(path, lm):
        if Path(path).name == "b.npy":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, lm)

    monkeypatch.setattr(G, "save_npy", full_disk)
    rep = G.generate(inp, tmp_path / "out", FakeModel(), video="none", progress=False)
    assert sorted(p.name for p in rep.written) == ["a.wav", "c.wav"]
    msg = rep.failed[inp / "b.wav"]
    assert "b.wav" in msg and "no space left on device" in msg.lower() and "\n" not in msg
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.npy", "c.npy"]  # no temp left
    # -o an existing file: one line, exit 1 (the model is never loaded)
    (tmp_path / "file").write_text("x")
    assert G.main(["-i", str(inp), "-o", str(tmp_path / "file"), "--quiet"]) == 1
    assert "file: -o must be a folder" in _one_line(capsys.readouterr().err)


def test_generate_overwrite_swaps_all_outputs_of_an_input_together(tmp_path, monkeypatch):
    import tf_talkface.generate as G

    wav = _tone(tmp_path / "take.wav")
    out = tmp_path / "out"
    G.generate(wav, out, FakeModel(lambda n: _face(n, 0.25)), save_npy_mode=True, progress=False)
    old = {f.name: f.read_bytes() for f in out.iterdir()}
    assert sorted(old) == ["take.npy", "take.wav"]

    def full_disk(path, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(G, "write_wav", full_disk)  # the second output of the input fails
    rep = G.generate(wav, out, FakeModel(lambda n: _face(n, 0.75)), save_npy_mode=True,
                     overwrite=True, progress=False)
    assert "no space left" in rep.failed[wav].lower()
    assert {f.name: f.read_bytes() for f in out.iterdir()} == old  # the old pair, untouched
    monkeypatch.undo()
    rep = G.generate(wav, out, FakeModel(lambda n: _face(n, 0.75)), save_npy_mode=True,
                     overwrite=True, progress=False)
    assert not rep.failed and np.load(out / "take.npy")[0, 0, 0] == 0.75
    assert sorted(f.name for f in out.iterdir()) == ["take.npy", "take.wav"]


def test_names_with_dots_keep_their_outputs_and_collisions_are_named(tmp_path):
    from tf_talkface.files import InputError, find_inputs
    from tf_talkface.generate import generate

    inp = tmp_path / "in"
    for n in ("take.1.wav", "take.2.wav", "sub/v1.0.flac"):
        (inp / n).parent.mkdir(parents=True, exist_ok=True)
        _tone(inp / n)
    assert [str(s) for _, s in find_inputs(inp)] == ["sub/v1.0", "take.1", "take.2"]
    rep = generate(inp, tmp_path / "out", FakeModel(), video="none", progress=False)
    assert len(rep.written) == 3 and not rep.skipped and not rep.failed
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.npy")) \
        == ["sub/v1.0.npy", "take.1.npy", "take.2.npy"]
    rep = generate(inp, tmp_path / "out", FakeModel(), video="none", progress=False)
    assert len(rep.skipped) == 3  # resume still recognises them
    _tone(inp / "take.1.flac")
    with pytest.raises(InputError, match=r"take\.1\.flac and .*take\.1\.wav|take\.1\.wav and .*take\.1\.flac"):
        find_inputs(inp)


# ----------------------------------------------------------------------------- B2: datasets

def _hdf5(path: Path, seed: int) -> Path:
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("flmark", data=rng.uniform(0, 1, (4, 10, 136)).astype(np.float32))
        f.create_dataset("MelFeatures", data=rng.normal(size=(4, 10, 128)).astype(np.float32))
    return path


def test_prepare_refuses_an_existing_dataset_and_replaces_it_only_whole(tmp_path, capsys,
                                                                         monkeypatch):
    from tf_talkface import prepare as P
    from tf_talkface.data import records
    from tf_talkface.data.manifest import load_manifest, shard_paths
    from tf_talkface.data.records import RecordSpec, iter_clips

    ds = tmp_path / "ds"
    cli = lambda *a: P.main(["--from-hdf5", str(a[0]), "--layout", "eskimez2018", "--out", str(ds),
                             "--split", "0.5,0.5,0", *a[1:]])
    assert cli(_hdf5(tmp_path / "one.hdf5", 0)) == 0  # the --from-hdf5 CLI
    capsys.readouterr()
    before = load_manifest(ds)

    def clips():
        m = load_manifest(ds)
        spec = RecordSpec.from_manifest(m)
        return {c["clip_id"]: c["features"] for s in ("train", "val")
                for c in iter_clips(shard_paths(ds, m, s), spec)}

    old = clips()
    assert cli(_hdf5(tmp_path / "two.hdf5", 1)) == 2  # no --overwrite: refused, untouched
    assert "already holds a dataset" in capsys.readouterr().err and load_manifest(ds) == before
    real = records.serialize_clip
    calls = {"n": 0}

    def full_disk(rec):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(ds / "shard"))
        return real(rec)

    monkeypatch.setattr(records, "serialize_clip", full_disk)
    assert cli(tmp_path / "two.hdf5", "--overwrite") == 1
    assert "no space left on device" in _one_line(capsys.readouterr().err).lower()
    assert load_manifest(ds) == before  # the old dataset is whole and readable
    assert clips().keys() == old.keys()
    monkeypatch.setattr(records, "serialize_clip", real)
    assert cli(tmp_path / "two.hdf5", "--overwrite") == 0
    new = clips()
    assert set(new) == {f"two/{i:06d}" for i in range(4)}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # swapped


def test_prepare_refuses_a_foreign_folder_and_a_file(tmp_path):
    from tf_talkface.data.build import PrepareError, begin_dataset

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("x")
    with pytest.raises(PrepareError, match="not empty and not a dataset"):
        begin_dataset(tmp_path / "home")
    (tmp_path / "f").write_text("x")
    with pytest.raises(PrepareError, match="existing file"):
        begin_dataset(tmp_path / "f")
    assert begin_dataset(tmp_path / "new") == tmp_path / "new"  # a new folder is built in place


# ----------------------------------------------------------------------------- B4: train/export/prepare OS errors

def test_train_and_prepare_os_errors_are_one_line(tmp_path, capsys):
    from tf_talkface import prepare, train

    data = _synthetic_dataset(tmp_path / "ds")
    (tmp_path / "file").write_text("x")
    rc = train.main(["--data", str(data), "--model", "lstm", "--out", str(tmp_path / "file" / "run"),
                     "--units", "4", "--epochs", "1", "--quiet"])
    assert rc == 1 and str(tmp_path / "file") in _one_line(capsys.readouterr().err)
    rc = prepare.main(["--from-hdf5", str(_hdf5(tmp_path / "x.hdf5", 0)), "--layout",
                       "eskimez2018", "--out", str(tmp_path / "file" / "ds")])
    assert rc == 1 and str(tmp_path / "file") in _one_line(capsys.readouterr().err)


def test_train_bad_noise_folder_is_one_line(small_datasets, tmp_path, capsys):
    from tf_talkface import train

    (tmp_path / "no_audio").mkdir()
    for i, noise in enumerate((tmp_path / "missing", tmp_path / "no_audio")):
        rc = train.main(["--data", str(small_datasets["eskimez2020"]), "--model", "cnn", "--out",
                         str(tmp_path / f"run{i}"), "--noise", str(noise), "--epochs", "1",
                         "--quiet"])
        line = _one_line(capsys.readouterr().err)
        assert rc == 2 and f"--noise {noise}" in line, line


# ----------------------------------------------------------------------------- B7: model cards

def _card_folder(tmp_path: Path, **change) -> Path:
    card = json.loads((BUNDLED / "1" / "model_card.json").read_text())
    card.update(change)
    d = tmp_path / "m" / "1"
    d.mkdir(parents=True)
    (d / "model_card.json").write_text(json.dumps(card))
    (d / "saved_model.pb").write_bytes(b"")
    return d


@pytest.mark.parametrize("change,why", [
    ({"recipe": "eskimez2077"}, "recipe 'eskimez2077' does not fit a cnn model"),
    ({"sample_rate": 16000}, "sample_rate 16000 Hz: a cnn model hears 8000 Hz"),
    ({"model": "transformer"}, "unknown model 'transformer'"),
    ({"neutral_face": [[0, 0]] * 10}, "'neutral_face' must be 68 finite"),
    ({"min_samples": 0}, "'min_samples' must be an integer >= 1"),
])
def test_model_cards_are_checked_on_load(tmp_path, change, why):
    from tf_talkface.saved_model import load_model

    d = _card_folder(tmp_path, **change)
    with pytest.raises(ModelError, match="invalid model card: " + why.replace("(", r"\(")):
        load_model(d)


def test_model_paths_that_are_not_exported_models_say_what_to_do(tmp_path, checkpoint,
                                                                 monkeypatch, capsys):
    from tf_talkface.generate import main
    from tf_talkface.saved_model import load_model

    wav = str(_tone(tmp_path / "a.wav"))
    ck = checkpoint("lstm_d1_c3")
    assert main(["-i", wav, "-o", str(tmp_path / "o"), "-m", str(ck), "--quiet"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "a training checkpoint" in line and "tf_talkface.export --checkpoint" in line
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="a training run.*export --run"):
        load_model(run)
    junk = tmp_path / "junk"
    junk.mkdir()
    monkeypatch.setenv("TF_TALKFACE_MODEL", str(junk))
    with pytest.raises(ModelError, match="junk: not a tf_talkface SavedModel.*TF_TALKFACE_MODEL"):
        load_model()
    monkeypatch.setenv("TF_TALKFACE_MODEL", str(_card_folder(tmp_path, sample_rate=3)))
    with pytest.raises(ModelError, match="invalid model card.*came from \\$TF_TALKFACE_MODEL"):
        load_model()


def test_broken_checkpoints_are_named(tmp_path, checkpoint):
    from tf_talkface.export import ExportError, load_trained

    src = checkpoint("lstm_d1_c3")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(src.read_text()[:200])
    with pytest.raises(ExportError, match="bad.json: unreadable checkpoint"):
        load_trained(bad_json)
    cut = tmp_path / "cut.json"
    shutil.copy(src, cut)
    weights = src.with_name(src.stem + ".weights.h5").read_bytes()
    (tmp_path / "cut.weights.h5").write_bytes(weights[: len(weights) // 3])
    with pytest.raises(ExportError, match="cut.weights.h5: cannot load the weights"):
        load_trained(cut)


# ----------------------------------------------------------------------------- B9: logs and JSON

def test_startup_noise_filter_keeps_real_messages():
    from tf_talkface.console import STARTUP_NOISE, captured_fd2

    noise = ["2026-12-01 04:38:55.754853: E external/local_xla/xla/stream_executor/cuda/"
             "cuda_fft.cc:485] Unable to register cuFFT factory: Attempting to register factory "
             "for plugin cuFFT when one has already been registered",
             "I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see",
             "W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not "
             "find TensorRT"]
    real = ["UserWarning: something the user should see", "E tensorflow/core/x.cc:1] real error"]
    assert all(STARTUP_NOISE.search(s) for s in noise)
    assert not any(STARTUP_NOISE.search(s) for s in real)
    with captured_fd2() as lines:
        os.write(2, b"from C\n")
        print("from Python", file=sys.__stderr__)  # the real stderr (pytest swaps sys.stderr)
    assert lines == ["from C", "from Python"]


def _venv_script(name: str) -> str:
    script = Path(sys.executable).with_name(name)
    if not script.is_file():
        raise AssertionError(f"console script {script} not installed (pip install -e .)")
    return str(script)


def test_clis_start_quietly_and_real_errors_still_show(tmp_path):
    """The real CLIs with the bundled model: a successful generate prints nothing on stderr; the
    console script stream with NaN on stdin prints exactly its one-line error (TensorFlow was
    imported: the model was loaded)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    wav = _tone(tmp_path / "a.wav", seconds=1.0)
    r = subprocess.run([sys.executable, "-m", "tf_talkface.generate", "-i", str(wav), "-o",
                        str(tmp_path / "o"), "--video", "none", "--quiet"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert np.isfinite(np.load(tmp_path / "o" / "a.npy")).all()
    x = np.full(8000, 0.1, np.float32)
    x[4000] = np.nan
    r = subprocess.run([_venv_script("tf-talkface-stream"), "-i", "-", "-o", str(tmp_path / "s.npy")],
                       input=x.tobytes(), cwd=ROOT, env=env, capture_output=True, timeout=300)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert _one_line(err).startswith("stream: error: stdin: chunk 6 holds 1 NaN/Inf")
    assert not (tmp_path / "s.npy").exists()


def test_json_artefacts_hold_null_not_nan(tmp_path):
    from tf_talkface.data.manifest import write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"r": float("nan"), "a": [np.float32("inf"), 1.5],
                                            "n": np.nan, "ok": np.float64(2.0)})
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON")) == \
        {"r": None, "a": [None, 1.5], "n": None, "ok": 2.0}


# ----------------------------------------------------------------------------- B10: permissions

def test_json_and_basis_files_follow_the_umask(tmp_path):
    from tf_talkface.data.manifest import write_json_atomic
    from tf_talkface.face.pca import fit_pca

    basis = fit_pca(np.random.default_rng(0).normal(size=(20, 136)), 3, source="test")
    old = os.umask(0o027)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        basis.save(tmp_path / "basis.json")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "basis.json").stat().st_mode & 0o777 == 0o640
    old = os.umask(0o022)
    try:
        basis.save(tmp_path / "basis2.json")
    finally:
        os.umask(old)
    assert (tmp_path / "basis2.json").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "basis.json", "basis2.json"]


# ----------------------------------------------------------------------------- C1: skips

PROBE = '''
from conftest import missing


def test_probe():
    missing("probe data absent")
'''


def _probe(tmp_path, **env):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_TALKFACE_DATA")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           str(tmp_path / "test_probe.py")], cwd=tmp_path, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_missing_prerequisites_skip_for_users_and_fail_in_ci(tmp_path):
    """Issue 12 C1: a test without its real data skips on a user's machine, fails in CI, and a
    TF_TALKFACE_DATA naming no folder is an error (exit 4: usage error) before any test runs."""
    r = _probe(tmp_path)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout
    r = _probe(tmp_path, CI="true")
    assert r.returncode == 1 and "1 failed" in r.stdout and "CI is set" in r.stdout, r.stdout
    r = _probe(tmp_path, TF_TALKFACE_DATA=str(tmp_path / "no_such_folder"))
    assert r.returncode == 4 and "is not a folder" in r.stderr + r.stdout, r.stdout + r.stderr


# ----------------------------------------------------------------------------- B8: partial input

def _truncated_flac(path: Path) -> Path:
    import soundfile as sf

    t = np.arange(15 * 16000) / 16000
    sf.write(path.with_suffix(".full.flac"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
             16000)
    data = path.with_suffix(".full.flac").read_bytes()
    path.write_bytes(data[: len(data) // 10])
    return path


def test_truncated_audio_is_reported_with_both_durations(tmp_path, capsys, fake_stream):
    import warnings

    from tf_talkface.audio.io import AudioWarning
    from tf_talkface.generate import generate

    cut = _truncated_flac(tmp_path / "cut.flac")
    with pytest.warns(AudioWarning, match=r"cut\.flac: only 1\.\d\d s of audio decoded of the 15\.00 s"):
        y = load_audio(cut, 8000)
    assert 0.5 < len(y) / 8000 < 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole file gives no warning
        load_audio(tmp_path / "cut.full.flac", 8000)
    rep = generate(cut, tmp_path / "out", FakeModel(), video="none", progress=False)
    assert cut in rep.written and len(rep.warnings) == 1 and "15.00 s" in rep.warnings[0]
    assert fake_stream.main(["-i", str(cut), "-o", str(tmp_path / "s.npy")]) == 0
    err = capsys.readouterr().err
    assert _one_line(err).startswith("stream: warning:") and "15.00 s the file declares" in err


def test_load_npy_refuses_landmarks_of_another_length(tmp_path):
    from tf_talkface.generate import generate

    write_wav(tmp_path / "a.wav", np.full(6 * 8000, 0.1, np.float32), 8000)  # 6 s
    np.save(tmp_path / "a.npy", _face(20))  # 0.8 s
    rep = generate(tmp_path / "a.npy", tmp_path / "out", load_npy_mode=True, video="lines",
                   size=64, progress=False)
    assert "20 frames (0.80 s at 25 fps) but a.wav lasts 6.00 s" in rep.failed[tmp_path / "a.npy"]


def test_delay_longer_than_the_clips_and_max_clips_below_one_are_refused(tmp_path):
    from tf_talkface.prepare import PrepareError, prepare
    from tf_talkface.train import TrainConfig, TrainError, train

    data = _synthetic_dataset(tmp_path / "ds")  # clips of 10-12 frames
    with pytest.raises(TrainError, match="--delay 10 frames is not shorter than the shortest clip"):
        train(TrainConfig(data=str(data), model="lstm", out=str(tmp_path / "run"), delay=10,
                          units=4, epochs=1))
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"x" * 100)
    for n in (0, -1):
        with pytest.raises(PrepareError, match=f"--max-clips {n}"):
            prepare([tmp_path / "v"], tmp_path / f"d{n}", max_clips=n, progress=False)


def test_video_on_a_full_disk_is_an_os_error_not_an_ffmpeg_mystery(tmp_path, monkeypatch):
    """B4: ffmpeg that ran out of disk leaves an unreadable mp4; write_video says "no space left"
    (OSError ENOSPC naming the video) instead of "ffmpeg did not produce a readable mp4"."""
    import collections

    import tf_talkface.viz.video_io as V

    def unreadable(path):
        raise AudioError(f"{path}: ffmpeg cannot open it")

    monkeypatch.setattr(V, "media_info", unreadable)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    with pytest.raises(RuntimeError, match="ffmpeg did not produce a readable mp4"):
        V.write_video(tmp_path / "a.mp4", iter(frames))  # disk not full: ffmpeg's own failure
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(V.shutil, "disk_usage", lambda p: usage(10, 10, 0))
    with pytest.raises(OSError) as e:
        V.write_video(tmp_path / "a.mp4", iter(frames))
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "a.mp4")
    assert not list(tmp_path.iterdir())  # no temp file left
