"""Generation-speed benchmark: the original per-frame algorithms vs ours, side by side in one run.

Same trained models, the same ``--seconds`` of real speech, every variant measured in the same
process and **interleaved** (one round = every variant once; ``--repeats`` rounds; the median of
the rounds is reported), so ratios stay meaningful on a shared, noisy machine.

LSTM (Eskimez et al. 2018, checkpoint ``lstm_d1_c3_b16`` = SavedModel ``lstm_grid_s1``):

- ``(a)`` original algorithm (``generate.py`` of the original): the log-mel-delta features and
  the context stacking computed once (numpy front-end, as the original), then for every output
  frame ``i`` one ``model.predict`` (batch 1) on the 75-frame window ending at ``i``,
  zero-padded on the left, keeping the last output. Timed on ``--subset`` frames spread evenly
  over the clip and **extrapolated** per frame (every call has the same shape, so the cost per
  call does not depend on ``i``); the front-end is timed once per round and amortised.
- ``(a')`` the same per-window algorithm without Keras' ``predict`` overhead (one traced
  ``tf.function`` call per window): how much of (a) is the algorithm, how much the API.
- ours: the exported SavedModel (waveform in, in-graph front-end, LSTM once over the whole
  sequence through :class:`~tf_talkface.models.lstm.StackedLSTMInference`: input projection of
  a layer as one matmul over all frames, only ``h @ recurrent_kernel`` in the loop); the same
  graph as a plain ``tf.function``; and that graph with the LSTM stack under XLA
  (``jit_compile=True`` on the stack only; the front-end stays in plain TF).
- for comparison, the Keras model called once over the whole sequence (what the SavedModel ran
  before ``StackedLSTMInference``; Keras' LSTM computes ``x_t @ kernel`` inside its loop), as a
  plain ``tf.function`` and under XLA (front-end included in the cluster).

CNN (Eskimez et al. 2020, checkpoint ``cnn_nr2`` = SavedModel ``cnn_nr_grid_s1``):

- ``(b)`` original algorithm: peak scaling + 1120-sample zero padding, then one eager forward
  (batch 1, like the original PyTorch loop) per 2240-sample window, hop 320. Subset and
  extrapolation as for (a).
- ``(b')`` the same per-window forward through a traced ``tf.function``.
- ours: the fully-convolutional SavedModel (waveform in, whole clip in one call). FLOPs from
  :func:`tf_talkface.models.cnn.flops_fully_conv` / ``flops_per_window_eval``; its achieved
  GFLOP/s is compared with a float32 ``tf.linalg.matmul`` (``--matmul`` square) in the same run.

    python scripts/bench_generate.py [--seconds 60] [--speech ../shared/data/speech/obama.wav]
                                     [--repeats 3] [--subset 100]

Streaming (``tf_talkface.stream``), LSTM and CNN: the whole clip pushed through a ``Streamer`` in
40-ms chunks (one frame hop each, as a live source), then ``flush``, timed as a whole like the
other variants (CNN with the streamer's fixed ``peak=1.0``; same work as any other peak). No goal
here: the per-frame latency percentiles are ``scripts/bench_stream.py``'s.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from tf_talkface.audio.features import add_context, logmel_delta_features
from tf_talkface.audio.io import load_audio
from tf_talkface.audio.layers import LogMelDeltas, stack_context
from tf_talkface.config import LogMelConfig
from tf_talkface.export import load_trained, python_path_predict
from tf_talkface.models import cnn as C
from tf_talkface.models.lstm import StackedLSTMInference
from tf_talkface.resources import shared_data_dir
from tf_talkface.saved_model import load_model
from tf_talkface.stream import streamer_for

WINDOW_2018 = 75  # frames per original prediction window


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def speech_of(path: str, seconds: float, sr: int) -> np.ndarray:
    """``seconds`` of the file at ``sr`` Hz (the file repeated if it is shorter)."""
    y = load_audio(path, sr)
    n = int(round(seconds * sr))
    if len(y) < n:
        y = np.tile(y, -(-n // len(y)))
    return np.ascontiguousarray(y[:n], dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speech", default=str((shared_data_dir() or "../shared/data") / "speech" / "obama.wav"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--subset", type=int, default=100, help="frames timed for the per-frame originals")
    ap.add_argument("--lstm-ckpt", default="saved_models/checkpoints/lstm_d1_c3_b16.json")
    ap.add_argument("--lstm-saved", default="saved_models/lstm_grid_s1")
    ap.add_argument("--cnn-ckpt", default="saved_models/checkpoints/cnn_nr2.json")
    ap.add_argument("--cnn-saved", default="saved_models/cnn_nr_grid_s1")
    ap.add_argument("--matmul", type=int, default=2048, help="square matmul size for the GFLOP/s reference")
    a = ap.parse_args()

    print(f"machine: {cpu_model()} | {os.cpu_count()} CPU cores visible | "
          f"TensorFlow {tf.__version__} | Python {platform.python_version()} | "
          f"nice {os.nice(0)} | intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()} (0 = all)")
    dur = a.seconds

    # ------------------------------------------------------------------ models and inputs
    lstm = load_trained(a.lstm_ckpt)
    cnn = load_trained(a.cnn_ckpt)
    lstm_sm, cnn_sm = load_model(a.lstm_saved), load_model(a.cnn_saved)
    for sm, tm in ((lstm_sm, lstm), (cnn_sm, cnn)):
        src = sm.card.get("source", "")
        print(f"{sm.name}: exported from {src} (benchmark checkpoint {tm.source or '?'})")
    y44 = speech_of(a.speech, dur, 44100)
    y8 = speech_of(a.speech, dur, 8000)
    n_lstm = lstm_sm.frames_for_samples(len(y44))
    n_cnn = cnn_sm.frames_for_samples(len(y8))
    print(f"speech: {a.speech}, {dur:.1f} s -> {n_lstm} LSTM frames (44.1 kHz), {n_cnn} CNN frames (8 kHz)")

    # ------------------------------------------------------------------ LSTM variants
    net, ctx, delay = lstm.net, lstm.context, lstm.delay
    dim = 128 * (ctx + 1)

    def lstm_frontend():  # the original computed the features once per file (numpy)
        return add_context(logmel_delta_features(y44, LogMelConfig()), ctx).astype(np.float32)

    feats = lstm_frontend()
    assert feats.shape == (n_lstm, dim), feats.shape
    rng_idx = np.linspace(0, n_lstm - 1, min(a.subset, n_lstm)).round().astype(int)

    def window_2018(i: int) -> np.ndarray:
        w = np.zeros((1, WINDOW_2018, dim), np.float32)
        lo = max(0, i - WINDOW_2018 + 1)
        w[0, WINDOW_2018 - (i + 1 - lo):] = feats[lo:i + 1]
        return w

    wins_a = [window_2018(i) for i in rng_idx]
    net_fn = tf.function(lambda x: net(x, training=False))

    def orig_a():
        for w in wins_a:
            net.predict(w, verbose=0)[0, -1]

    def orig_a_fn():
        for w in wins_a:
            net_fn(tf.constant(w))[0, -1].numpy()

    front = LogMelDeltas.from_logmel_config(LogMelConfig())

    stack = StackedLSTMInference(net)

    def features_graph(wave):
        return stack_context(front(wave[None])[0][None], ctx)

    def undelay(p):
        t = tf.shape(p)[0]
        return tf.gather(p, tf.minimum(tf.range(t) + delay, t - 1))

    def ours_graph(wave):
        return undelay(stack(features_graph(wave))[0])

    def keras_graph(wave):
        return undelay(net(features_graph(wave), training=False)[0])

    spec = [tf.TensorSpec([None], tf.float32)]
    lstm_fn = tf.function(ours_graph, input_signature=spec)
    stack_xla = tf.function(lambda x: stack(x), jit_compile=True,
                            input_signature=[tf.TensorSpec([1, None, dim], tf.float32)])
    feats_fn = tf.function(features_graph, input_signature=spec)
    undelay_fn = tf.function(undelay)

    def lstm_ours_xla(wave):  # front-end in plain TF, the LSTM stack compiled by XLA
        return undelay_fn(stack_xla(feats_fn(wave))[0])

    keras_fn = tf.function(keras_graph, input_signature=spec)
    keras_xla = tf.function(keras_graph, input_signature=spec, jit_compile=True)
    y44_t = tf.constant(y44)

    # correctness: ours vs the library's Python path (numpy front-end) on the same 60 s
    ref = python_path_predict(lstm, y44).reshape(n_lstm, -1)
    outs = {"SavedModel": lstm_sm.predict(y44).reshape(n_lstm, -1),
            "tf.function": lstm_fn(y44_t).numpy(), "XLA stack": lstm_ours_xla(y44_t).numpy(),
            "Keras tf.fn": keras_fn(y44_t).numpy(), "Keras XLA": keras_xla(y44_t).numpy()}
    for k, v in outs.items():
        print(f"  check LSTM {k:11s} vs python_path_predict: max |diff| {np.abs(v - ref).max():.2e}")
    # the original per-window output differs from whole-sequence output only through the
    # truncated 75-frame history: report how much, for information
    last = np.array([net_fn(tf.constant(w))[0, -1].numpy() for w in wins_a])
    raw = np.asarray(net(feats[None], training=False))[0][rng_idx]
    d = np.abs(last - raw).max(axis=1)
    early = rng_idx < WINDOW_2018 - 1
    print(f"  info: per-window (75-frame history) vs whole-sequence LSTM output, max |diff|: "
          f"frames < 74 (zero-padded windows) {d[early].max() if early.any() else float('nan'):.2e}, "
          f"frames >= 74 {d[~early].max() if (~early).any() else float('nan'):.2e}, "
          f"median {np.median(d):.2e} ({len(d)} frames)")

    # ------------------------------------------------------------------ CNN variants
    cnet = cnn.net
    padded = C.pad_and_scale(y8)
    c_idx = np.linspace(0, n_cnn - 1, min(a.subset, n_cnn)).round().astype(int)
    wins_b = [padded[None, i * C.HOP:i * C.HOP + C.WINDOW] for i in c_idx]
    cnet_fn = tf.function(lambda x: cnet(x, training=False))

    def orig_b():
        for w in wins_b:
            np.asarray(cnet(w, training=False))[0, 0]

    def orig_b_fn():
        for w in wins_b:
            cnet_fn(tf.constant(w))[0, 0].numpy()

    cref = python_path_predict(cnn, y8).reshape(n_cnn, -1)
    cout = cnn_sm.predict(y8).reshape(n_cnn, -1)
    print(f"  check CNN SavedModel vs python_path_predict: max |diff| {np.abs(cout - cref).max():.2e}")
    codes_full = np.asarray(cnet(padded[None], training=False))[0]
    codes_win = np.array([np.asarray(cnet(w, training=False))[0, 0] for w in wins_b[:20]])
    print(f"  check CNN per-window vs fully-convolutional codes: max |diff| "
          f"{np.abs(codes_win - codes_full[c_idx[:20]]).max():.2e} (20 frames)")

    # streaming: 40-ms pushes over the whole clip, then flush (checked against the offline path)
    lstm_st, cnn_st = streamer_for(lstm), streamer_for(cnn, peak=1.0)

    def stream_all(s, y):
        s.reset()
        step = int(round(0.040 * s.sample_rate))
        return np.concatenate([s.push(y[i:i + step]) for i in range(0, len(y), step)] + [s.flush()])

    print(f"  check LSTM stream (40-ms pushes) vs python_path_predict: max |diff| "
          f"{np.abs(stream_all(lstm_st, y44).reshape(n_lstm, -1) - ref).max():.2e}")
    print(f"  check CNN stream (40-ms pushes) vs python_path_predict(peak=1): max |diff| "
          f"{np.abs(stream_all(cnn_st, y8) - python_path_predict(cnn, y8, peak=1.0)).max():.2e}")

    mm = tf.random.normal([a.matmul, a.matmul], dtype=tf.float32)
    mm_fn = tf.function(lambda x: tf.linalg.matmul(x, x))

    variants = {
        "lstm (a) original, model.predict per frame": lambda: orig_a(),
        "lstm (a') original, tf.function per frame": lambda: orig_a_fn(),
        "lstm front-end numpy (original, once/file)": lambda: lstm_frontend(),
        "lstm ours SavedModel (waveform in)": lambda: lstm_sm.predict(y44),
        "lstm ours tf.function (waveform in)": lambda: lstm_fn(y44_t).numpy(),
        "lstm ours, LSTM stack under XLA": lambda: lstm_ours_xla(y44_t).numpy(),
        "lstm Keras model, tf.function (before)": lambda: keras_fn(y44_t).numpy(),
        "lstm Keras model, XLA incl. front-end": lambda: keras_xla(y44_t).numpy(),
        "lstm stream, 40-ms pushes + flush": lambda: stream_all(lstm_st, y44),
        "cnn (b) original, eager forward per window": lambda: orig_b(),
        "cnn (b') original, tf.function per window": lambda: orig_b_fn(),
        "cnn ours SavedModel fully-conv (waveform in)": lambda: cnn_sm.predict(y8),
        "cnn stream, 40-ms pushes + flush": lambda: stream_all(cnn_st, y8),
        "matmul": lambda: mm_fn(mm).numpy(),
    }
    for fn in variants.values():  # warm-up: tracing, XLA compilation, caches
        fn()
        fn()
    times = {k: [] for k in variants}
    for r in range(a.repeats):  # interleaved rounds
        for k, fn in variants.items():
            times[k].append(timed(fn))
        print(f"  round {r + 1}/{a.repeats} done")
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: (min(v), max(v)) for k, v in times.items()}

    # per output frame (s)
    fe = med["lstm front-end numpy (original, once/file)"]
    pf = {
        "lstm (a) original, model.predict per frame": med["lstm (a) original, model.predict per frame"] / len(wins_a) + fe / n_lstm,
        "lstm (a') original, tf.function per frame": med["lstm (a') original, tf.function per frame"] / len(wins_a) + fe / n_lstm,
        "lstm ours SavedModel (waveform in)": med["lstm ours SavedModel (waveform in)"] / n_lstm,
        "lstm ours tf.function (waveform in)": med["lstm ours tf.function (waveform in)"] / n_lstm,
        "lstm ours, LSTM stack under XLA": med["lstm ours, LSTM stack under XLA"] / n_lstm,
        "lstm Keras model, tf.function (before)": med["lstm Keras model, tf.function (before)"] / n_lstm,
        "lstm Keras model, XLA incl. front-end": med["lstm Keras model, XLA incl. front-end"] / n_lstm,
        "lstm stream, 40-ms pushes + flush": med["lstm stream, 40-ms pushes + flush"] / n_lstm,
        "cnn (b) original, eager forward per window": med["cnn (b) original, eager forward per window"] / len(wins_b),
        "cnn (b') original, tf.function per window": med["cnn (b') original, tf.function per window"] / len(wins_b),
        "cnn ours SavedModel fully-conv (waveform in)": med["cnn ours SavedModel fully-conv (waveform in)"] / n_cnn,
        "cnn stream, 40-ms pushes + flush": med["cnn stream, 40-ms pushes + flush"] / n_cnn,
    }
    base_a = pf["lstm (a) original, model.predict per frame"]
    base_a2 = pf["lstm (a') original, tf.function per frame"]
    base_b = pf["cnn (b) original, eager forward per window"]
    base_b2 = pf["cnn (b') original, tf.function per window"]
    print()
    hdr = ("variant", "ms/frame", "RTF", "vs (a)/(b)", "vs (a')/(b')")
    print(f"{hdr[0]:46s} {hdr[1]:>9s} {hdr[2]:>8s} {hdr[3]:>10s} {hdr[4]:>12s}  spread of rounds (s)")
    for k, s in pf.items():
        frames = n_lstm if k.startswith("lstm") else n_cnn
        b1, b2 = (base_a, base_a2) if k.startswith("lstm") else (base_b, base_b2)
        rtf = s * frames / dur
        lo, hi = spread[k]
        print(f"{k:46s} {s * 1e3:9.3f} {rtf:8.4f} {b1 / s:9.1f}x {b2 / s:11.1f}x  {lo:.3f}..{hi:.3f}")
    print(f"(a), (a'), (b), (b') timed on {len(wins_a)} / {len(wins_b)} frames spread over the clip and "
          f"extrapolated per frame; (a)/(a') include the numpy front-end ({fe * 1e3:.1f} ms per file) "
          f"amortised; ours include their in-graph front-end.")

    # FLOPs
    macs_fc, macs_pw = C.flops_fully_conv(n_cnn), C.flops_per_window_eval(n_cnn)
    t_cnn = med["cnn ours SavedModel fully-conv (waveform in)"]
    t_b = pf["cnn (b) original, eager forward per window"] * n_cnn
    t_mm = med["matmul"]
    gf_cnn = 2 * macs_fc / t_cnn / 1e9
    gf_b = 2 * macs_pw / t_b / 1e9
    gf_mm = 2 * a.matmul ** 3 / t_mm / 1e9
    print(f"\nCNN FLOPs ({n_cnn} frames): fully-conv {2 * macs_fc / 1e9:.2f} GFLOP vs per-window "
          f"{2 * macs_pw / 1e9:.2f} GFLOP -> {macs_pw / macs_fc:.2f}x fewer")
    print(f"achieved: CNN fully-conv {gf_cnn:.1f} GFLOP/s, (b) per-window {gf_b:.1f} GFLOP/s, "
          f"float32 matmul {a.matmul}^2 {gf_mm:.1f} GFLOP/s -> CNN at {gf_cnn / gf_mm:.0%} of matmul")
    lower = 2 * macs_fc / (gf_mm * 1e9)
    print(f"FLOP bound: at matmul speed the fully-conv CNN would need {lower * 1e3:.0f} ms "
          f"(RTF {lower / dur:.4f}); the per-window original {2 * macs_pw / (gf_mm * 1e9) * 1e3:.0f} ms")

    # goals (issue 6)
    best_lstm = min(("lstm ours SavedModel (waveform in)", "lstm ours tf.function (waveform in)",
                     "lstm ours, LSTM stack under XLA"), key=lambda k: pf[k])
    s_sm = base_a / pf["lstm ours SavedModel (waveform in)"]
    s_best = base_a / pf[best_lstm]
    rtf_sm = med["lstm ours SavedModel (waveform in)"] / dur
    rtf_best = med[best_lstm] / dur
    s_cnn = base_b / pf["cnn ours SavedModel fully-conv (waveform in)"]
    ok = lambda c: "MET" if c else "NOT MET"  # noqa: E731
    print("\ngoals (issue 6):")
    print(f"  LSTM offline >= 300x faster than (a): SavedModel {s_sm:.0f}x, best ({best_lstm}) "
          f"{s_best:.0f}x -> {ok(s_sm >= 300)} (SavedModel) / {ok(s_best >= 300)} (best)")
    print(f"  LSTM RTF <= 0.005 incl. front-end: SavedModel {rtf_sm:.4f}, best {rtf_best:.4f} -> "
          f"{ok(rtf_sm <= 0.005)} / {ok(rtf_best <= 0.005)}")
    print(f"  CNN >= 6x fewer FLOPs than per-window: {macs_pw / macs_fc:.2f}x -> {ok(macs_pw / macs_fc >= 6)}")
    print(f"  CNN >= 5x faster than (b): {s_cnn:.1f}x -> {ok(s_cnn >= 5)} "
          f"(vs (b') tf.function per window: {base_b2 / pf['cnn ours SavedModel fully-conv (waveform in)']:.1f}x)")
    ps_l, ps_c = pf["lstm stream, 40-ms pushes + flush"], pf["cnn stream, 40-ms pushes + flush"]
    print(f"  streaming (info, no goal here; per-frame p50/p99: scripts/bench_stream.py): whole clip in "
          f"40-ms pushes + flush: LSTM {ps_l * 1e3:.3f} ms/frame, RTF {ps_l * n_lstm / dur:.4f} "
          f"({ps_l / pf['lstm ours SavedModel (waveform in)']:.1f}x the SavedModel's time); CNN "
          f"{ps_c * 1e3:.3f} ms/frame, RTF {ps_c * n_cnn / dur:.4f} "
          f"({ps_c / pf['cnn ours SavedModel fully-conv (waveform in)']:.1f}x the SavedModel's time)")


if __name__ == "__main__":
    main()
