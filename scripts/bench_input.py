"""Input-pipeline benchmark, measured side by side in one run.

1. Pipeline throughput (clips/s) of the tf.data pipelines vs how fast the model's training step
   consumes clips (pipeline must not be the bottleneck: ratio > 1).
2. In-graph noise-resilient mixing (NoiseBank.nr_pair inside tf.data) vs the same mixing as a
   per-sample Python/numpy loop fed through tf.data.Dataset.from_generator (ratio printed).

    python scripts/bench_input.py [--d2018 tfrecords/grid_s1_2018] [--d2020 tfrecords/grid_s1_2020]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from tf_talkface.audio import noise as N
from tf_talkface.data.pipeline import WindowConfig, make_dataset, read_clips
from tf_talkface.models.cnn import pad_and_scale_tf
from tf_talkface.resources import shared_data_dir
from tf_talkface.train import PAPER_DEFAULTS, TrainConfig, build_for
from tf_talkface.data.manifest import load_manifest


def clips_per_s(ds, batches: int, batch: int) -> float:
    it = iter(ds)
    next(it)  # warm-up (graph tracing, file opening)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t)


def step_clips_per_s(model, ds, steps: int, batch: int) -> float:
    it = iter(ds)
    x, y, w = next(it)
    model.train_on_batch(x, y, sample_weight=w)  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y, sample_weight=w)
    return steps * batch / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--d2018", default="tfrecords/grid_s1_2018")
    ap.add_argument("--d2020", default="tfrecords/grid_s1_2020")
    ap.add_argument("--noise", default=str((shared_data_dir() or ".") / "noise"))
    a = ap.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores")

    # 1a. LSTM (2018): batch 128, delay 1, context 3
    b = 128
    ds = make_dataset(a.d2018, "train", "lstm", b, WindowConfig(1, 3), repeat=True, cache=False)
    pipe = clips_per_s(ds, 10, b)
    cfg = TrainConfig(data=a.d2018, model="lstm", out="/tmp/bench", delay=1, context=3).resolved()
    model, _ = build_for(cfg, load_manifest(a.d2018))
    step = step_clips_per_s(model, ds, 3, b)
    print(f"lstm   pipeline {pipe:8.1f} clips/s | train step {step:7.1f} clips/s | ratio {pipe / step:6.1f}x")

    # 1b. noise-resilient CNN (2020): batch 8
    bank = N.NoiseBank.from_dir(a.noise, 8000)
    b = 8
    ds = make_dataset(a.d2020, "train", "cnn", b, noise_bank=bank, repeat=True, cache=False)
    pipe = clips_per_s(ds, 20, b)
    cfg = TrainConfig(data=a.d2020, model="cnn", out="/tmp/bench", noise=a.noise).resolved()
    nr, _ = build_for(cfg, load_manifest(a.d2020))
    step = step_clips_per_s(nr, ds, 2, b)
    print(f"cnn NR pipeline {pipe:8.1f} clips/s | train step {step:7.1f} clips/s | ratio {pipe / step:6.1f}x")

    # 2. in-graph NR mixing vs a per-sample Python loop, same clips, same work
    clips = read_clips(a.d2020, "train").map(lambda c: c["audio"]).cache()
    n = sum(1 for _ in clips)
    in_graph = clips.map(lambda s: tuple(pad_and_scale_tf(v) for v in bank.nr_pair(s)),
                         num_parallel_calls=tf.data.AUTOTUNE).padded_batch(b).prefetch(tf.data.AUTOTUNE)
    noises = [np.asarray(bank.waveform(i)) for i in range(bank.num_files)]
    rng = np.random.default_rng(0)

    def python_loop():
        for s in clips.as_numpy_iterator():
            g = rng.choice(N.GAIN_DB)
            clean = N.apply_gain_db(s, g)
            seg = N.noise_segment(noises[rng.integers(len(noises))], len(s), rng)
            noisy = N.mix_at_snr(clean, seg, rng.choice(N.SNR_DB))
            yield clean.astype(np.float32), noisy.astype(np.float32)

    spec = (tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.float32))
    py = tf.data.Dataset.from_generator(python_loop, output_signature=spec).map(
        lambda c, x: (pad_and_scale_tf(c), pad_and_scale_tf(x))).padded_batch(b).prefetch(tf.data.AUTOTUNE)
    for _ in in_graph:  # warm-up: fills the cache, traces
        pass

    def full_pass(ds):
        t = time.perf_counter()
        for _ in ds:
            pass
        return n / (time.perf_counter() - t)

    g_rate, p_rate = full_pass(in_graph), full_pass(py)
    print(f"NR mixing over {n} clips: in-graph {g_rate:8.1f} clips/s | per-sample Python loop "
          f"{p_rate:8.1f} clips/s | ratio {g_rate / p_rate:5.1f}x")


if __name__ == "__main__":
    main()
