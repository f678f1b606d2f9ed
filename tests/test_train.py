"""Training end to end on real prepared clips: run folder contents, test metrics, paper
defaults, flag errors, tf.distribute equivalence, kill-and-resume with BackupAndRestore."""
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tf_talkface.train import TrainConfig, TrainError, train

ROOT = Path(__file__).resolve().parents[1]


def _history(out):
    with open(Path(out) / "history.csv") as f:
        return list(csv.DictReader(f))


def test_lstm_run_folder_and_metrics(small_datasets, tmp_path):
    out = tmp_path / "lstm"
    res = train(TrainConfig(data=str(small_datasets["eskimez2018"]), model="lstm", out=str(out),
                            delay=1, context=3, units=16, epochs=4, batch_size=4), verbose=0)
    for f in ("config.json", "manifest.json", "history.csv", "loss.png", "best.keras",
              "final.keras", "metrics.json"):
        assert (out / f).is_file(), f
    assert not (out / "backup").exists()  # removed after a finished run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["epochs"] == 4  # paper default lr
    hist = _history(out)
    assert len(hist) == 4 and float(hist[-1]["loss"]) < float(hist[0]["loss"])
    text = (out / "metrics.json").read_text()
    test = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}: invalid JSON"))["test"]
    # the mean face's mouth_open_r is NaN (undefined for a static face): null in the file
    from tf_talkface.data.manifest import json_safe
    assert test == json_safe(res["test"])
    assert test["n_clips"] == 2 and test["n_frames"] == 150
    assert np.isnan(res["test"]["mean_face"]["mouth_open_r"]) and test["mean_face"]["mouth_open_r"] is None
    for k in ("all_rmse", "mouth_rmse", "lmd"):
        assert 0 < test["model"][k] < 1 and 0 < test["mean_face"][k] < 1, k
    # the model's face moves (a static face, like the mean face, has no mouth-opening r)
    assert np.isfinite(test["model"]["mouth_open_r"])
    assert test["model"]["all_rmse"] != test["mean_face"]["all_rmse"]
    assert 0 < test["mean_face"]["mouth_rmse"] < 0.1  # /600 canvas units


def test_noise_resilient_cnn_run(small_datasets, data_dir, tmp_path):
    out = tmp_path / "nr"
    res = train(TrainConfig(data=str(small_datasets["eskimez2020"]), model="cnn", out=str(out),
                            noise=str(data_dir / "noise"), epochs=2, steps_per_epoch=1, batch_size=2),
                verbose=0)
    hist = _history(out)
    assert {"l1_clean", "l1_noisy", "feat_mse", "val_l1_noisy"} <= set(hist[0])
    # the noisy branch really hears other input: its loss differs from the clean one
    assert all(float(h["l1_noisy"]) != float(h["l1_clean"]) for h in hist)
    assert res["test"]["model"]["all_rmse"] > 0 and res["test"]["n_frames"] == 150


def test_autoregressive_cnn_tc_run_with_time_limit(small_datasets, tmp_path):
    # a time limit of ~0 stops after the first epoch although 5 were asked for
    res = train(TrainConfig(data=str(small_datasets["eskimez2020"]), model="cnn_tc",
                            out=str(tmp_path / "tc"), epochs=5, steps_per_epoch=1, batch_size=2,
                            time_limit_min=1e-6), verbose=0)
    assert res["epochs_run"] == 1 and np.isfinite(res["test"]["model"]["all_rmse"])


def test_incompatible_flags_are_refused(small_datasets, tmp_path):
    d18, d20 = str(small_datasets["eskimez2018"]), str(small_datasets["eskimez2020"])
    with pytest.raises(TrainError, match="--delay/--context belong to the lstm"):
        train(TrainConfig(data=d20, model="cnn", out=str(tmp_path / "a"), delay=1))
    with pytest.raises(TrainError, match="noise-resilient training\\) is defined for cnn"):
        train(TrainConfig(data=d18, model="lstm", out=str(tmp_path / "b"), noise=str(tmp_path)))
    r = subprocess.run([sys.executable, "-m", "tf_talkface.train", "--data", d20, "--model", "lstm",
                        "--out", str(tmp_path / "c")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "needs an eskimez2018 dataset" in r.stderr
    train(TrainConfig(data=d18, model="lstm", out=str(tmp_path / "d"), units=4, epochs=1), verbose=0)
    with pytest.raises(TrainError, match="holds a different run"):
        train(TrainConfig(data=d18, model="lstm", out=str(tmp_path / "d"), units=8, epochs=1))


STRATEGY_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tf_talkface.train import TrainConfig, train
    data, out = sys.argv[1], sys.argv[2]
    losses = {}
    for strategy, batch in (("one_device", 4), ("mirrored", 2)):  # same global batch of 4
        train(TrainConfig(data=data, model="lstm", out=f"{out}/{strategy}", units=8, dropout=0.0,
                          epochs=3, batch_size=batch, strategy=strategy, cache=False), verbose=0)
        with open(f"{out}/{strategy}/history.csv") as f:
            losses[strategy] = [float(l.split(",")[1]) for l in f.readlines()[1:]]
    print(json.dumps(losses))
""")


def test_mirrored_strategy_matches_one_device(small_datasets, tmp_path):
    r = subprocess.run([sys.executable, "-c", STRATEGY_SCRIPT, str(small_datasets["eskimez2018"]),
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    losses = json.loads(r.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(losses["mirrored"], losses["one_device"], rtol=1e-4)


WORKER_SCRIPT = textwrap.dedent("""
    import sys
    from tf_talkface.train import TrainConfig, train
    data, out = sys.argv[1], sys.argv[2]
    train(TrainConfig(data=data, model="lstm", out=out, units=8, dropout=0.0, epochs=3,
                      batch_size=2, strategy="multiworker", cache=False), verbose=0)
""")


def _free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multiworker_two_local_workers_match_one_device(small_datasets, tmp_path):
    data = str(small_datasets["eskimez2018"])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):  # both workers get the same --out: the chief writes it, worker 1 a subfolder
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, data, str(tmp_path / "mw")],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=600)[0].decode() for p in procs]
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-3000:]
    train(TrainConfig(data=data, model="lstm", out=str(tmp_path / "one"), units=8, dropout=0.0,
                      epochs=3, batch_size=4, strategy="one_device", cache=False), verbose=0)
    one = [float(h["loss"]) for h in _history(tmp_path / "one")]
    multi = [float(h["loss"]) for h in _history(tmp_path / "mw")]
    np.testing.assert_allclose(multi, one, rtol=1e-3)
    other = [float(h["loss"]) for h in _history(tmp_path / "mw" / "workers" / "worker-1")]
    np.testing.assert_allclose(other, multi, rtol=1e-6)  # epoch logs are global on every worker
    assert len(_history(tmp_path / "mw")) == 3  # no duplicate rows from the second worker


def test_previous_best_and_chief_out(tmp_path, monkeypatch):
    from tf_talkface.train import chief_out, previous_best
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,3,2.0\n1,2,1.5\n2,1,1.7\n3,1,1.9\n")
    assert previous_best(tmp_path / "history.csv", "val_loss") == (1.5, 2)
    assert previous_best(tmp_path / "none.csv", "val_loss") == (None, 0)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a", "b"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert chief_out(tmp_path, "multiworker") == tmp_path / "workers" / "worker-1"
    assert chief_out(tmp_path, "mirrored") == tmp_path
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c"], "worker": ["a"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert chief_out(tmp_path, "multiworker") == tmp_path / "workers" / "worker-0"


def test_corrupt_shard_is_named(small_datasets, tmp_path):
    import shutil
    from tf_talkface.data.manifest import DatasetError
    d = tmp_path / "broken"
    shutil.copytree(small_datasets["eskimez2018"], d)
    shard = sorted(d.glob("train-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=f"corrupt TFRecord shard\\(s\\): {shard.name}"):
        train(TrainConfig(data=str(d), model="lstm", out=str(tmp_path / "run"), units=4, epochs=1,
                          cache=False), verbose=0)


def test_cnn_paper_defaults_reach_the_optimizer(small_datasets):
    """Issue 12 C6: the 2020 paper's settings (Adam 1e-4, beta_1 0.5, L1, 200 epochs, patience
    20) are what the compiled model gets, not only what the config says."""
    from tf_talkface.data.manifest import load_manifest
    from tf_talkface.train import build_for

    cfg = TrainConfig(data=str(small_datasets["eskimez2020"]), model="cnn", out="unused",
                      preset="paper").resolved()
    assert (cfg.lr, cfg.epochs, cfg.patience) == (1e-4, 200, 20)
    fit_model, _ = build_for(cfg, load_manifest(cfg.data))
    opt = fit_model.optimizer
    assert type(opt).__name__ == "Adam"
    assert float(opt.learning_rate.numpy()) == pytest.approx(1e-4)
    assert float(opt.beta_1) == pytest.approx(0.5) and float(opt.beta_2) == pytest.approx(0.999)
    y, p = np.zeros((1, 3, 4), np.float32), np.full((1, 3, 4), 2.0, np.float32)
    assert float(fit_model.loss(y, p)) == pytest.approx(2.0)  # L1 (MSE would give 4)


def test_best_checkpoint_is_the_best_epoch_and_tensorboard_is_written(small_datasets, tmp_path):
    """best.keras re-evaluated on the validation split gives the lowest val_loss of the
    history (not the last epoch's); tb/ holds train and validation event files."""
    import keras

    from tf_talkface.data.pipeline import WindowConfig, make_dataset
    from tf_talkface.models.registry import custom_objects

    out = tmp_path / "best"
    data = str(small_datasets["eskimez2018"])
    # seeded: with lr 0.05 the validation loss goes up in epoch 3 (measured 0.138, 0.111,
    # 0.0999, 0.1007), so the best epoch (2) is not the last one
    train(TrainConfig(data=data, model="lstm", out=str(out), units=8, epochs=4, batch_size=2,
                      lr=0.05, preset="paper", dropout=0.0), verbose=0)
    val = [float(h["val_loss"]) for h in _history(out)]
    assert min(val) < val[-1], f"the last epoch is the best one: the test cannot tell ({val})"
    ds = make_dataset(data, "val", "lstm", 2, WindowConfig(0, 0), None, shuffle=False)
    loss = {}
    for f in ("best", "final"):
        m = keras.saving.load_model(out / f"{f}.keras", custom_objects=custom_objects())
        loss[f] = m.evaluate(ds, verbose=0, return_dict=True)["loss"]
    assert loss["best"] == pytest.approx(min(val), rel=1e-4), (loss, val)
    assert loss["final"] == pytest.approx(val[-1], rel=1e-4), (loss, val)
    for sub in ("train", "validation"):
        assert list((out / "tb" / sub).glob("events.out.tfevents.*")), sub


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import keras
    import tf_talkface.train as T
    real = T.LossCurve.make
    def make(csv_path, png_path):  # the last callback: after the backup and the CSV row
        cb = real(csv_path, png_path)
        class Kill(type(cb)):
            def on_epoch_end(self, epoch, logs=None):
                super().on_epoch_end(epoch, logs)
                if epoch == int(os.environ["KILL_AT_EPOCH"]):
                    os.kill(os.getpid(), signal.SIGKILL)  # a preempted machine: no clean-up
        return Kill()
    T.LossCurve.make = staticmethod(make)
    sys.exit(T.main(sys.argv[1:]))
""")


def test_killed_run_resumes_and_early_stopping_survives_the_resume(small_datasets, tmp_path):
    """Deterministic kill: SIGKILL at the end of epoch 2 (after BackupAndRestore saved it).
    With a learning rate too small to change any weight the validation loss never improves, so
    patience 4 must stop the run after epoch 4 (0 = best, 1-4 without improvement) counting the
    epochs before the kill: without the carried-over state the resumed run would go on."""
    out = tmp_path / "resume"
    cmd = ["--data", str(small_datasets["eskimez2018"]), "--model", "lstm", "--units", "8",
           "--epochs", "40", "--batch-size", "2", "--out", str(out), "--quiet", "--patience", "4",
           "--lr", "1e-12", "--dropout", "0", "--preset", "paper"]
    env = dict(os.environ, KILL_AT_EPOCH="2")
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *cmd], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert [int(h["epoch"]) for h in _history(out)] == [0, 1, 2] and (out / "backup").is_dir()
    assert not (out / "final.keras").exists()
    r = subprocess.run([sys.executable, "-m", "tf_talkface.train", *cmd], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    hist = _history(out)
    assert [int(h["epoch"]) for h in hist] == [0, 1, 2, 3, 4]  # resumed at 3, stopped after 4
    assert len({h["val_loss"] for h in hist}) == 1  # the loss never improved
    assert not (out / "backup").exists() and (out / "final.keras").is_file()
