"""``evaluate`` on small real data with the bundled models: SNR mixing on real speech and noise,
the CLI end to end (files, summary keys, mean-face baseline by hand, shuffled = permutation of the
model's output, determinism, noise changes the error), and the refusals."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tf_talkface import evaluate as E
from tf_talkface import metrics as M
from tf_talkface.audio.io import load_audio
from tf_talkface.audio.noise import measure_snr_db

ROOT = Path(__file__).resolve().parents[1]
LSTM = ROOT / "saved_models" / "lstm_grid_s1"
CNN = ROOT / "saved_models" / "cnn_nr_grid_s1"
CNN_BASIS = CNN / "1" / "pca_basis.json"
TC_CKPT = ROOT / "saved_models" / "checkpoints" / "cnn_tc_nr.json"
NOISES = ("white.wav", "factory1.wav")


# ----------------------------------------------------------------------------- no data needed


def test_argument_parsing():
    assert E.parse_model_arg("lstm=saved_models/x") == ("lstm", "saved_models/x")
    assert E.parse_model_arg("saved_models/x") == (None, "saved_models/x")
    assert E.parse_data_arg("tfrecords/a:val") == ("tfrecords/a", "val")
    assert E.parse_data_arg("tfrecords/a") == ("tfrecords/a", "test")
    assert E.parse_snrs(None, with_noise=False) == ["clean"]
    assert E.parse_snrs(None, with_noise=True) == ["clean", 20, 10, 5, 0, -5]
    assert E.parse_snrs(["clean", "2.5", "-5", "-5.0"], with_noise=True) == ["clean", 2.5, -5]
    assert [E.snr_key(s) for s in ("clean", 20, -5.0, 2.5)] == ["clean", "20", "-5", "2.5"]
    with pytest.raises(E.EvaluateError, match="--noise"):
        E.parse_snrs(["clean", "10"], with_noise=False)
    with pytest.raises(E.EvaluateError, match="number"):
        E.parse_snrs(["loud"], with_noise=True)


def test_shuffle_is_a_seeded_permutation_and_align_trims():
    pred = np.arange(75 * 4, dtype=np.float32).reshape(75, 2, 2)
    a = E.shuffle_frames(pred, 0, "s1/bbaf2n")
    np.testing.assert_array_equal(a, E.shuffle_frames(pred, 0, "s1/bbaf2n"))  # deterministic
    assert not np.array_equal(a, pred) and not np.array_equal(a, E.shuffle_frames(pred, 1, "s1/bbaf2n"))
    np.testing.assert_array_equal(np.sort(a[:, 0, 0]), pred[:, 0, 0])  # same frames
    p, t = E.align(np.zeros((76, 68, 2)), np.zeros((75, 68, 2)), "c")
    assert len(p) == len(t) == 75
    with pytest.raises(E.EvaluateError, match="clip c7.*77 frames.*75"):
        E.align(np.zeros((77, 68, 2)), np.zeros((75, 68, 2)), "c7")


def test_noise_segment_start_depends_on_seed_clip_and_noise_only():
    s = E.noise_start_seconds(0, "s1/a", "white", 3.0, 27.5)
    assert 0 <= s <= 24.5 and s == E.noise_start_seconds(0, "s1/a", "white", 3.0, 27.5)
    assert s != E.noise_start_seconds(1, "s1/a", "white", 3.0, 27.5)
    assert s != E.noise_start_seconds(0, "s1/b", "white", 3.0, 27.5)
    assert s != E.noise_start_seconds(0, "s1/a", "pink", 3.0, 27.5)
    assert E.noise_start_seconds(0, "s1/a", "white", 3.0, 2.0) == 0.0  # short noise: tiled


# -------------------------------------------------------------------------------- real data


def test_snr_mixing_on_real_speech_and_noise(data_dir):
    """Every noise file, both model rates, the sweep's SNRs: measured SNR within 0.1 dB, and the
    same noise (in seconds) at 8 kHz and 44.1 kHz."""
    noise_files = E.find_noise_files(data_dir / "noise")
    assert len(noise_files) >= 2
    for rate in (8000, 44100):
        speech = load_audio(data_dir / "grid" / "s1" / "bbaf2n.mp4", rate)
        for f in noise_files:
            noise = load_audio(f, rate)
            for snr in (20, 10, 5, 0, -5):
                noisy = E.noisy_speech(speech, noise, rate, snr, 0, "s1/bbaf2n", f.stem)
                assert noisy.dtype == np.float32 and noisy.shape == speech.shape
                assert measure_snr_db(speech, noisy) == pytest.approx(snr, abs=0.1), (f.name, rate)
    # the segment is the same in seconds whatever the rate: its 8 kHz version correlates
    white = [f for f in noise_files if f.stem == "white"] or noise_files[:1]
    segs = {}
    for rate, cid in ((8000, "s1/bbaf2n"), (44100, "s1/bbaf2n"), (8000, "s1/other")):
        speech = load_audio(data_dir / "grid" / "s1" / "bbaf2n.mp4", rate)
        noise = load_audio(white[0], rate)
        segs[rate, cid] = E.noisy_speech(speech, noise, rate, 0, 0, cid, "w") - speech
    import librosa

    down = librosa.resample(segs[44100, "s1/bbaf2n"], orig_sr=44100, target_sr=8000,
                            res_type="soxr_hq")
    same, other = segs[8000, "s1/bbaf2n"], segs[8000, "s1/other"]
    n = min(len(down), len(same))
    # white noise band-limited to 4 kHz: the start rounded to whole samples (half a sample at
    # most at 8 kHz) leaves r ~ 0.85; another segment (another clip) gives r ~ 0
    assert np.corrcoef(down[:n], same[:n])[0, 1] > 0.7
    assert abs(np.corrcoef(down[:n], other[:n])[0, 1]) < 0.2


@pytest.fixture(scope="module")
def eval_data(small_datasets, landmark_cache, tmp_path_factory):
    """The small 2018 dataset, the small 2020 one (its own template) and a small 2020 dataset
    prepared with the bundled CNN's basis (so its coordinates are the model's)."""
    from tf_talkface.prepare import prepare

    from conftest import committed

    for f in (CNN_BASIS, LSTM, TC_CKPT):  # committed: missing fails, never skips
        committed(f)
    d = tmp_path_factory.mktemp("eval") / "d2020_model_basis"
    prepare([small_datasets["eskimez2020"].parent / "videos"], d, "eskimez2020", workers=2,
            split="0.5,0.25,0.25", seed=0, basis=str(CNN_BASIS), cache_dir=str(landmark_cache),
            progress=False)
    return {"d2018": small_datasets["eskimez2018"], "d2020_own": small_datasets["eskimez2020"],
            "d2020": d}


@pytest.fixture(scope="module")
def noise_dir(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("noise2")
    for n in NOISES:
        (d / n).symlink_to(data_dir / "noise" / n)
    return d


@pytest.fixture(scope="module")
def cli_runs(eval_data, noise_dir, tmp_path_factory):
    """The CLI twice with the same arguments (3 models: 2 SavedModels + 1 checkpoint)."""
    outs = []
    for k in range(2):
        out = tmp_path_factory.mktemp(f"eval_out{k}")
        rc = E.main(["-m", f"lstm={LSTM}", "-m", f"cnn_nr={CNN}", "-m", f"tc={TC_CKPT}",
                     "--data", str(eval_data["d2018"]), "--data", f"{eval_data['d2020']}:test",
                     "--noise", str(noise_dir), "--snr", "clean", "0", "-5",
                     "--max-clips", "2", "--out", str(out), "-q"])
        assert rc == 0
        outs.append(out)
    return outs


def _rows(out: Path) -> list[dict]:
    with open(out / "per_clip.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_cli_end_to_end_outputs_and_keys(cli_runs):
    out = cli_runs[0]
    for f in ("per_clip.csv", "summary.json", "results.md", "error_vs_snr.png",
              "mouth_open_r_vs_snr.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    s = json.loads((out / "summary.json").read_text())
    assert set(s) >= {"models", "units", "seed", "snr", "noise_files"}
    assert s["snr"] == ["clean", 0, -5] and s["noise_files"] == sorted(NOISES) and s["seed"] == 0
    assert set(s["units"]) == {"eskimez2018", "eskimez2020"}
    assert list(s["models"]) == ["lstm", "cnn_nr", "tc"]
    metrics = set(M.METRIC_NAMES)
    for name, e in s["models"].items():
        keys = {"model", "recipe", "data", "n_clips", "n_frames", "baselines", "noise"}
        assert set(e) >= keys | metrics
        assert e["n_clips"] == 2 and e["n_frames"] >= 2 * 70
        assert set(e["baselines"]) == {"mean_face", "shuffled"}
        assert set(e["noise"]) == {"white", "factory1"}
        tables = [e] + list(e["baselines"].values()) + [t for n in e["noise"].values()
                                                         for t in n.values()]
        for n in e["noise"].values():
            assert set(n) == {"0", "-5"}
        for t in tables:
            assert set(t) >= metrics
        for t in tables:
            for m in metrics:
                if t is e["baselines"]["mean_face"] and m == "mouth_open_r":
                    assert t[m] is None  # a static face has no correlation
                else:
                    assert np.isfinite(t[m]), (name, m)
    assert s["models"]["lstm"]["model"] == "lstm" and s["models"]["tc"]["model"] == "cnn_tc"
    assert s["models"]["lstm"]["data"].endswith(":test")
    rows = _rows(out)
    # 3 models x (3 clean systems + 2 noises x 2 SNRs) x 2 clips
    assert len(rows) == 3 * (3 + 4) * 2
    md = (out / "results.md").read_text()
    for word in ("## Clean speech", "mean face", "shuffled", "### white", "### factory1", "| tc |"):
        assert word in md


def test_mean_face_baseline_by_hand(cli_runs, eval_data):
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.data.pipeline import read_clips

    s = json.loads((cli_runs[0] / "summary.json").read_text())
    rows = _rows(cli_runs[0])
    for name, key in (("lstm", "d2018"), ("cnn_nr", "d2020")):
        man = load_manifest(eval_data[key])
        mean = np.asarray(man["feature_stats"]["landmarks"]["mean"], np.float64).reshape(68, 2)
        frames = {r["clip_id"]: int(r["frames"]) for r in rows
                  if r["model"] == name and r["system"] == "mean_face"}
        trues = []
        for c in read_clips(eval_data[key], "test").take(2).as_numpy_iterator():
            t = c["landmarks"].reshape(-1, 68, 2).astype(np.float64)
            trues.append(t[:frames[c["clip_id"].decode()]])
        t = np.concatenate(trues)
        err = mean[None] - t
        mouth = err[:, 48:68]
        cm = mouth - mouth.mean(axis=1, keepdims=True)  # LMD: centred mouth, mean distance
        lmd = np.linalg.norm(cm, axis=-1).mean()
        got = s["models"][name]["baselines"]["mean_face"]
        assert got["all_rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-6)
        assert got["mouth_rmse"] == pytest.approx(np.sqrt((mouth ** 2).mean()), rel=1e-6)
        assert got["lmd"] == pytest.approx(lmd, rel=1e-6)
        # the static face has no motion: its d1 error is the truth's own motion
        d1 = np.concatenate([np.diff(x, axis=0) for x in trues])
        assert got["d1_rmse"] == pytest.approx(np.sqrt((d1 ** 2).mean()), rel=1e-6)


def test_shuffled_baseline_is_a_permutation_of_the_model_output(cli_runs, eval_data):
    from tf_talkface.data.pipeline import read_clips
    from tf_talkface.saved_model import load_model

    rows = _rows(cli_runs[0])
    model = load_model(CNN)
    clips = list(read_clips(eval_data["d2020"], "test").take(2).as_numpy_iterator())
    preds = model.predict_batch([c["audio"] for c in clips])
    for c, pred in zip(clips, preds):
        cid = c["clip_id"].decode()
        p, t = E.align(pred, c["landmarks"].reshape(-1, 68, 2), cid)
        sh = E.shuffle_frames(p, 0, cid)
        # the same per-frame set, in another order
        key = lambda a: sorted(map(bytes, a.reshape(len(a), -1)))  # noqa: E731
        assert key(sh) == key(p) and not np.array_equal(sh, p)
        want = M.clip_metrics(sh, t)
        want_model = M.clip_metrics(p, t)
        got = {r["system"]: r for r in rows if r["model"] == "cnn_nr" and r["clip_id"] == cid
               and r["noise"] == "none"}
        for m in M.METRIC_NAMES:
            assert float(got["shuffled"][m]) == pytest.approx(want[m], rel=1e-5, abs=1e-9), m
            assert float(got["model"][m]) == pytest.approx(want_model[m], rel=1e-5, abs=1e-9), m
        # shuffling breaks the motion: the velocity error grows
        assert float(got["shuffled"]["d1_rmse"]) > float(got["model"]["d1_rmse"])


def test_deterministic_and_noise_changes_the_error(cli_runs):
    a, b = cli_runs
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    assert (a / "per_clip.csv").read_bytes() == (b / "per_clip.csv").read_bytes()
    s = json.loads((a / "summary.json").read_text())
    for name, e in s["models"].items():
        assert e["noise"]["white"]["-5"]["mouth_rmse"] != pytest.approx(e["mouth_rmse"], rel=1e-4), name
        assert e["noise"]["white"]["-5"] != e["noise"]["factory1"]["-5"]


def test_no_dataset_of_the_models_recipe(eval_data):
    with pytest.raises(E.EvaluateError, match=r"no dataset for model lstm .*eskimez2018.*eskimez2020"):
        E.evaluate([f"lstm={LSTM}"], [str(eval_data["d2020"])], max_clips=1, progress=False)


def test_2020_template_mismatch_is_refused(eval_data):
    with pytest.raises(E.EvaluateError, match=r"different PCA template.*--basis .*pca_basis\.json"):
        E.evaluate([str(CNN)], [str(eval_data["d2020_own"])], max_clips=1, progress=False)
    # with several datasets of its recipe, the model takes the one of its template
    d_own, d_ok = (E.load_eval_data(eval_data[k], max_clips=1) for k in ("d2020_own", "d2020"))
    m = E.load_eval_model(CNN)
    assert E.match_dataset(m, [d_own, d_ok]) is d_ok


def test_unknown_model_path(eval_data, tmp_path, capsys):
    with pytest.raises(E.EvaluateError, match="model not found"):
        E.load_eval_model(tmp_path / "no_such_model")
    with pytest.raises(E.EvaluateError, match="not a model"):
        E.load_eval_model(tmp_path)  # a folder, but no SavedModel, run or checkpoint
    rc = E.main(["-m", str(tmp_path / "nope"), "--data", str(eval_data["d2018"]), "-q"])
    assert rc == 1 and "model not found" in capsys.readouterr().err


def test_training_run_folders_are_evaluated_with_their_own_weights(small_datasets, tmp_path):
    """A ``train`` run folder as the model (issue 12 C8): two tiny runs (an LSTM on the 2018
    dataset, a CNN on the 2020 one, whose template is that dataset's) through the CLI; every
    per-clip metric is that of the run's own weights, i.e. of ``load_trained`` +
    ``python_path_predict`` on the clip's stored audio."""
    from tf_talkface.data.pipeline import read_clips
    from tf_talkface.export import load_trained, python_path_predict
    from tf_talkface.train import TrainConfig, train

    d18, d20 = small_datasets["eskimez2018"], small_datasets["eskimez2020"]
    runs = {"tiny_lstm": tmp_path / "tiny_lstm", "tiny_cnn": tmp_path / "tiny_cnn"}
    train(TrainConfig(data=str(d18), model="lstm", out=str(runs["tiny_lstm"]), delay=1,
                      context=3, units=16, epochs=2, batch_size=4), verbose=0)
    train(TrainConfig(data=str(d20), model="cnn", out=str(runs["tiny_cnn"]), epochs=1,
                      batch_size=2, steps_per_epoch=1), verbose=0)
    out = tmp_path / "eval"
    rc = E.main(["-m", str(runs["tiny_lstm"]), "-m", f"cnn_run={runs['tiny_cnn']}", "--data",
                 str(d18), "--data", str(d20), "--out", str(out), "-q"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert list(s["models"]) == ["tiny_lstm", "cnn_run"]  # the folder's name, or the one given
    for name, kind, data in (("tiny_lstm", "lstm", d18), ("cnn_run", "cnn", d20)):
        e = s["models"][name]
        assert (e["form"], e["model"], e["data"]) == ("run", kind, f"{data}:test")
        assert e["n_clips"] == 2 and e["n_frames"] == 150
    rows = _rows(out)
    for name, run, data in (("tiny_lstm", runs["tiny_lstm"], d18), ("cnn_run", runs["tiny_cnn"], d20)):
        tm = load_trained(run)
        preds, trues = [], []
        for c in read_clips(data, "test").as_numpy_iterator():
            cid = c["clip_id"].decode()
            p, t = E.align(python_path_predict(tm, c["audio"]), c["landmarks"].reshape(-1, 68, 2), cid)
            preds.append(p)
            trues.append(t)
            got = {r["system"]: r for r in rows if r["model"] == name and r["clip_id"] == cid}
            assert int(got["model"]["frames"]) == len(t) == 75
            want = M.clip_metrics(p, t)
            for m in M.METRIC_NAMES:
                if np.isnan(want[m]):
                    assert got["model"][m] in ("", "nan", "NaN"), (name, cid, m)
                else:
                    assert float(got["model"][m]) == pytest.approx(want[m], rel=1e-5, abs=1e-9), (name, cid, m)
            # the model is not its own baseline: its error differs from the mean face's
            assert float(got["model"]["all_rmse"]) != pytest.approx(float(got["mean_face"]["all_rmse"]), rel=1e-3)
        pooled = M.pooled_metrics(preds, trues)
        for m in ("all_rmse", "mouth_rmse", "lmd"):
            assert s["models"][name][m] == pytest.approx(pooled[m], rel=1e-5), (name, m)
