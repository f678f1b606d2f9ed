"""Streaming inference: audio chunks in, landmark frames out as soon as they are determined.

``python -m tf_talkface.stream [-m MODEL] -i WAV|- [--chunk 640] -o OUT.npy [--peak P]``
``[--image PHOTO (--video OUT.mp4 | --frames DIR) [--still] [--no-blink] ...]``

With ``--image`` the photo speaks as the audio arrives: each landmark frame is rendered
(:class:`tf_talkface.animate.animator.PhotoStream`) and sent to the mp4 encoder and/or written
as ``DIR/frame_NNNNNN.png`` at once; the frames equal offline rendering of the streamed
landmarks (tested). The mp4 carries the input's sound (not for ``-i -``: stdin audio is not
kept).

Library::

    from tf_talkface.stream import open_streamer

    s = open_streamer("saved_models/lstm_grid_s1")   # SavedModel (its stream_* signatures),
    # or a checkpoint / run folder: open_streamer("saved_models/checkpoints/lstm_d1_c3_b16.json"),
    # or from a loaded model: streamer_for(load_trained(...)), load_model(...).streamer()
    for chunk in source:               # float32 (n,) at s.sample_rate, any n >= 0
        frames = s.push(chunk)          # (k, 68, 2), k >= 0: the frames newly determined
    frames = s.flush()                  # end of stream: the remaining frames
    s.reset()                           # ready for a new stream (same model, no retracing)

The concatenation of everything ``push`` and ``flush`` return equals offline generation of the
whole file (:func:`tf_talkface.export.python_path_predict` / the SavedModel), for any chunking
(tested to 1e-5 with chunks of 1, 7, 1763, 1764, 5000 samples and the whole file).

LSTM (Eskimez et al. 2018, :class:`LSTMStreamer`):

* front-end: frame ``t`` of the reflect-padded STFT reads raw samples ``[t*hop - n_fft/2,
  t*hop + n_fft/2)`` (hop = n_fft = 1764 at 44.1 kHz). The *start* reflection uses samples
  ``1 .. n_fft/2`` (kept from the first push); the *end* reflection is only known at
  :meth:`~LSTMStreamer.flush`, so the last frame(s) are computed there. Each complete frame goes
  through the same ops as :class:`~tf_talkface.audio.layers.LogMelDeltas` (Hann, rfft, mel, log)
  in one ``tf.function`` with a fixed signature (frames, n_fft) (up to 4 frames: the same ops in
  numpy/scipy float32, cheaper than a graph call); deltas and context stacking use the previous
  frames (kept: 2 log-mel rows, ``context`` feature rows).
* the 4 LSTM layers are stepped with carried state: :class:`~tf_talkface.models.lstm.
  StackedLSTMInference` (same weights and cell math as the offline pass and the SavedModel)
  runs on the new frames from the carried states, in one ``tf.function`` with signature
  (1, None, dim) + 8 state tensors (traced once). Up to 4 new frames (the live case) go through
  the same cell equations in numpy instead (graph dispatch costs more than the ~2 M
  multiply-adds of a frame; equal to float32 round-off). Work and memory per frame are O(1).
* delay: output frame ``t`` is emitted once the LSTM has consumed input frame ``t + delay``;
  :meth:`flush` emits the last ``delay`` frames as the offline path does (last prediction repeated).
* post-filter (issue 11, ``TrainedModel.output_filter``): a :class:`FilterStream` over the
  frames so determined, each emitted ``K`` frames later (the CNN's works the same way on its
  PCA coefficients).

CNN (Eskimez et al. 2020, :class:`CNNStreamer`): frame ``t``'s window is raw
``[320 t - 1120, 320 t + 1120)`` (1120 zeros in front at the start), of which the valid-padding
trunk reads only the first 2237 samples, so the frame is computed as soon as sample
``320 t + 1116`` has arrived. Instead of a ring buffer of 2240 samples re-run per frame, each
layer keeps the tail of its input its next outputs need (< 21 samples / positions per trunk
layer, < 122 trunk positions for the head) and computes only its new outputs (all layers in
one ``tf.function``, signature = the 5 buffers (None, channels), run only when a frame is
complete): the fully-convolutional sharing of the offline pass, in streaming. At
:meth:`flush` the input is completed with zeros as in
:func:`~tf_talkface.models.cnn.pad_and_scale`. ``cnn_tc`` carries the previous frame's PCA
coefficients between chunks (the template's at the start); the recurrence and the PCA
reconstruction run in numpy (a few hundred multiply-adds per frame).

Peak normalisation differs on purpose: the 2020 path scales each clip by its *whole* peak
``max |x|``, which a stream cannot know before the end. The streamer divides by a fixed ``peak``
(default 1.0 = full-scale float input in [-1, 1]; set it from a calibration recording or the
input level). Offline generation gives the same numbers with the same option:
``python_path_predict(model, y, peak=P)`` / ``pad_and_scale(y, peak=P)``. With ``peak=None``
offline (the default) the results equal the streamer's only if ``P`` is the clip's peak.

Algorithmic latency (property ``latency_ms``): how long after the instant a frame depicts (its
centre, ``t * 40`` ms) the last audio sample it depends on arrives, i.e. the earliest the frame
can be emitted, compute time excluded (measured by ``scripts/bench_stream.py``):

* LSTM: ``(delay * hop + n_fft - n_fft // 2) / sr`` = delay x 40 ms + 20 ms (half window)
  = 60 ms for delay 1 (with delay 0, frame 0 waits one sample more for its start reflection).
  A post-filter over +-K frames adds K x 40 ms (either model).
* CNN: ``(2237 - 1120) / 8000`` s = 139.625 ms (the trunk's 2237 read samples of the 2240
  window, minus the 1120 before the centre).

``max_latency_ms`` is the worst case from the arrival of any audio sample to the emission of the
first frame whose window contains it (a sample just after a window start waits for the rest of
the window): LSTM ``delay * hop + n_fft`` samples = delay x 40 + 40 = 80 ms; CNN 2237 samples =
279.625 ms. Chunking adds up to one chunk of waiting on top (a 640-sample chunk at 8 kHz: 80 ms).

Long audio: :func:`generate_long` runs the streamer with big chunks (30 s by default), so an
hour of speech never builds an hour-sized graph buffer (memory: one chunk of audio + its frames
+ the output). The numbers equal the one-go offline path (tested on 10 minutes).

Measured here (``scripts/bench_stream.py --seconds 60``, 2-core CPU, one 40-ms frame per push,
compute only): LSTM p50 0.31 ms / p99 0.48 ms per frame; CNN 3.4 / 5.8 ms; CNN-TC 3.2 / 5.4 ms
(docs/performance.md).

The same algorithm runs inside exported SavedModels as the ``stream_init`` / ``stream_step`` /
``stream_flush`` signatures (state in, state out, so a server can hold sessions):
:mod:`tf_talkface.stream_graph`, ``docs/serving.md``. Both give the same frames at the same
moments (tested).
"""
from __future__ import annotations

import os

from tf_talkface.console import os_error_message, quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

import argparse
import itertools
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tf_talkface.audio.io import AudioError, AudioWarning
from tf_talkface.audio.level import CausalLevel
from tf_talkface.card import CARD_FILE, ModelError, resolve_model_dir
from tf_talkface.export import ExportError, load_trained
from tf_talkface.files import save_npy
from tf_talkface.models.layers import valid_filter
from tf_talkface.saved_model import load_model
from tf_talkface.stream_graph import cnn_propagate_fn
from tf_talkface.streamer import Streamer, stream_in_chunks, streaming_peak

__all__ = ["Streamer", "FilterStream", "LSTMStreamer", "CNNStreamer", "streamer_for",
           "open_streamer", "generate_long", "main"]

_EMPTY = np.zeros((0, 68, 2), np.float32)


_NUMPY_MAX_FRAMES = 4
"""LSTM: chunks giving at most this many frames are stepped in numpy (see LSTMStreamer)."""


def _np_activation(fn: Any):
    name = getattr(fn, "__name__", str(fn))
    if name == "sigmoid":
        return lambda v: (1.0 / (1.0 + np.exp(-v))).astype(np.float32)
    if name == "tanh":
        return np.tanh
    if name == "keras2_hard_sigmoid":
        return lambda v: np.clip(np.float32(0.2) * v + np.float32(0.5), 0.0, 1.0)
    if name == "linear":
        return lambda v: v
    return None


def _numpy_cells(cells: list) -> list | None:
    """Numpy twins of Keras LSTM cells (None if an activation has no numpy twin)."""
    steps = []
    for cell in cells:
        act, rec = _np_activation(cell.activation), _np_activation(cell.recurrent_activation)
        if act is None or rec is None:
            return None
        k = np.asarray(cell.kernel, np.float32)
        r = np.asarray(cell.recurrent_kernel, np.float32)
        b = np.asarray(cell.bias, np.float32) if cell.use_bias else np.zeros(k.shape[1], np.float32)

        def step(x, h, c, k=k, r=r, b=b, act=act, rec=rec):
            z = x @ k + h @ r + b
            zi, zf, zc, zo = np.split(z, 4, axis=1)
            c = rec(zf) * c + rec(zi) * act(zc)
            return (rec(zo) * act(c)).astype(np.float32), c.astype(np.float32)

        steps.append(step)
    return steps


class FilterStream:
    """Streaming twin of a :class:`~tf_talkface.models.layers.TemporalFilter` (the temporal
    post-filter of issue 11): frames in, filtered frames out ``K`` frames later; everything
    returned, concatenated, equals the layer on the whole sequence.

    The buffer starts with the layer's padding before the first frame (``K`` zero rows for
    ``"zeros"``; for ``"edge"`` none until the first frame, which then enters ``K + 1`` times)
    and keeps the last ``2K`` rows; :meth:`push` with ``final=True`` appends the padding after
    the last frame.

    Args:
        layer: the ``TemporalFilter`` (its kernel (2K+1, dim, dim) and bias (dim,) are copied).
    """

    def __init__(self, layer: Any) -> None:
        self.kernel = np.asarray(layer.kernel, np.float32)
        self.bias = np.asarray(layer.bias, np.float32)
        self.frames, self.padding = int(layer.frames), layer.padding
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        k = self.frames if self.padding == "zeros" else 0
        self._buf = np.zeros((k, len(self.bias)), np.float32)

    @property
    def held(self) -> int:
        """Frames pushed and not yet returned."""
        return max(0, len(self._buf) - self.frames)

    def push(self, rows: np.ndarray, final: bool = False) -> np.ndarray:
        """(n, dim) new frames -> (m, dim) filtered frames now determined (float32); with
        ``final`` the stream ends: every remaining frame."""
        rows = np.asarray(rows, np.float32).reshape(-1, len(self.bias))
        k = self.frames
        if self.padding == "edge" and not len(self._buf):  # the stream's first frames
            rows = np.concatenate([np.repeat(rows[:1], k, 0), rows])
        buf = np.concatenate([self._buf, rows])
        if final:
            buf = np.concatenate([buf, np.repeat(buf[-1:], k, 0) if self.padding == "edge"
                                  else np.zeros((k, buf.shape[1]), np.float32)])
        out = valid_filter(buf, self.kernel, self.bias)
        self._buf = buf[len(out):]
        return out


class LSTMStreamer(Streamer):
    """Stateful streaming of the 2018 LSTM (44.1 kHz in, 25 fps out); see the module docstring."""

    def __init__(self, model: Any) -> None:
        import keras
        import tensorflow as tf

        from tf_talkface.audio.layers import LogMelDeltas
        from tf_talkface.config import LogMelConfig
        from tf_talkface.models.lstm import StackedLSTMInference

        if model.kind != "lstm":
            raise ValueError(f"LSTMStreamer needs an lstm model, got {model.kind!r}")
        self.model, self.kind = model, model.kind
        self.cfg = cfg = LogMelConfig()
        self.sample_rate = cfg.sample_rate
        self.n_fft, self.hop, self.pad = cfg.n_fft, cfg.hop_length, cfg.n_fft // 2
        self.delay, self.context = model.delay, model.context
        front = LogMelDeltas.from_logmel_config(cfg)
        # the same ops as LogMelDeltas.call, on a batch of complete frames
        self._logmel = tf.function(front.logmel_frames, autograph=False,
                                   input_signature=[tf.TensorSpec([None, self.n_fft], tf.float32)])
        self._window_np, self._mel_t_np = front._window, front._mel_t  # the layer's constants
        stack = StackedLSTMInference(model.net)  # raises ValueError without LSTM layers
        self.input_dim = stack.input_dim
        self._units = stack.units
        state_specs = [tf.TensorSpec([1, u], tf.float32) for u in self._units for _ in (0, 1)]

        @tf.function(input_signature=[tf.TensorSpec([1, None, self.input_dim], tf.float32)]
                     + state_specs, autograph=False)
        def run(x, *states):
            y, out = stack(x, list(states), return_states=True)
            return (y, *out)

        # fast path for a few frames (the live case): the same cell math in numpy. A TF graph
        # step costs ~1.5 ms of op dispatch on a 2-core CPU for ~2 M multiply-adds; numpy ~0.2 ms.
        # Same numbers up to float32 round-off (~2e-7 on the landmarks).
        self._np_cells = _numpy_cells([l.cell for l in model.net.layers
                                        if isinstance(l, keras.layers.LSTM)])

        self._run = run
        self._readout_np = stack.readout_numpy
        # the post-filter (issue 11): +-K frames of the undelayed landmarks
        self._filter = None if model.post_filter is None else FilterStream(model.post_filter)
        self.post_filter_frames = 0 if self._filter is None else self._filter.frames
        self.reset()

    # ----------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the stream (buffers, recurrent state, counters)."""
        self._head = np.zeros(0, np.float32)   # raw samples before the padded buffer exists
        self._buf: np.ndarray | None = None     # padded-coordinate samples from frame t_next on
        self._tail = np.zeros(0, np.float32)   # last pad + 1 raw samples (end reflection)
        self.n_samples = 0
        self._t_next = 0                        # next STFT frame to compute
        self._logmel_prev: list[np.ndarray] = []  # last 2 log-mel rows
        self._feat_hist: list[np.ndarray] = []    # last `context` delta-feature rows (newest first)
        self._states = [np.zeros((1, u), np.float32) for u in self._units for _ in (0, 1)]
        self._last_pred: np.ndarray | None = None
        self._consumed = 0                      # LSTM input frames consumed
        self._produced = 0                      # output frames determined (delay undone)
        self.frames_emitted = 0                 # ... and returned (after the post-filter)
        if self._filter is not None:
            self._filter.reset()
        self._closed = False

    def _features(self, frames: np.ndarray) -> np.ndarray:
        """Complete STFT frames (k, n_fft) -> context-stacked delta features (k, input_dim)."""
        if len(frames) <= _NUMPY_MAX_FRAMES:  # live case: numpy (float32 FFT), no graph dispatch
            import scipy.fft

            mag = np.abs(scipy.fft.rfft(frames * self._window_np, n=self.n_fft, axis=-1))
            mag = (mag / np.float32(1.0 + self.n_fft / 2.0)).astype(np.float32)
            lm = np.log(np.float32(self.cfg.log_floor) + np.square(mag) @ self._mel_t_np)
        else:
            lm = self._logmel(frames).numpy()
        rows = []
        for row in lm:
            prev = self._logmel_prev
            d = np.zeros_like(row)
            d1 = row - prev[-1] if len(prev) >= 1 else np.zeros_like(row)
            d2 = d1 - (prev[-1] - prev[-2]) if len(prev) >= 2 else d
            self._logmel_prev = (prev + [row])[-2:]
            f = np.concatenate([d1, d2])
            if self.context:
                if not self._feat_hist:
                    self._feat_hist = [f] * self.context
                x = np.concatenate([f] + self._feat_hist)
                self._feat_hist = ([f] + self._feat_hist)[:self.context]
            else:
                x = f
            rows.append(x)
        return np.stack(rows).astype(np.float32)

    def _step(self, frames: np.ndarray) -> np.ndarray:
        """STFT frames -> landmark frames now determined by the delay."""
        if len(frames) == 0:
            return _EMPTY
        x = self._features(frames)
        if self._np_cells is not None and len(x) <= _NUMPY_MAX_FRAMES:
            states = [np.asarray(v) for v in self._states]
            rows = []
            for row in x:
                h = row[None]
                for i, step in enumerate(self._np_cells):
                    h, c = step(h, states[2 * i], states[2 * i + 1])
                    states[2 * i], states[2 * i + 1] = h, c
                rows.append(h[0])
            self._states = states
            y = self._readout_np(np.stack(rows))
        else:
            res = self._run(x[None], *self._states)
            y = res[0].numpy()[0]
            self._states = [v.numpy() for v in res[1:]]
        first = self._consumed
        self._consumed += len(y)
        self._last_pred = y[-1]
        # prediction j becomes output frame j - delay
        keep = y[max(0, self.delay - first):]
        self._produced += len(keep)
        return keep.reshape(-1, 68, 2).astype(np.float32)

    def _emit(self, frames: np.ndarray, final: bool = False) -> np.ndarray:
        """Determined frames (k, 68, 2) -> what leaves now (through the post-filter)."""
        if self._filter is not None:
            frames = self._filter.push(frames.reshape(-1, 136), final).reshape(-1, 68, 2)
        self.frames_emitted += len(frames)
        return frames

    def _complete_frames(self, final: bool) -> np.ndarray:
        buf = self._buf
        if final:
            end = self._tail[-2: -self.pad - 2: -1] if self.pad else self._tail[:0]
            buf = np.concatenate([buf, end])
            n_total = 1 + (self.n_samples + 2 * self.pad - self.n_fft) // self.hop
            k = n_total - self._t_next
        else:
            k = max(0, (len(buf) - self.n_fft) // self.hop + 1)
        if k <= 0:
            return np.zeros((0, self.n_fft), np.float32)
        idx = np.arange(k)[:, None] * self.hop + np.arange(self.n_fft)[None]
        frames = buf[idx]
        self._t_next += k
        self._buf = buf[k * self.hop:]
        return frames

    def push(self, chunk: Any) -> np.ndarray:
        """Add samples (float32 (n,), 44.1 kHz); returns the (k, 68, 2) frames now determined."""
        x = self._accept(chunk)
        if x is None:
            return _EMPTY
        self._tail = np.concatenate([self._tail, x])[-(self.pad + 1):]
        if self._buf is None:
            self._head = np.concatenate([self._head, x])
            if len(self._head) <= self.pad:
                return _EMPTY
            h = self._head
            self._buf = np.concatenate([h[self.pad:0:-1], h]) if self.pad else h
            self._head = np.zeros(0, np.float32)
        else:
            self._buf = np.concatenate([self._buf, x])
        return self._emit(self._step(self._complete_frames(final=False)))

    def flush(self) -> np.ndarray:
        """End of stream: the remaining frames (end reflection, then the delayed last frames).

        A stream shorter than ``n_fft // 2 + 1`` samples (20 ms) gives no frames (the offline
        path refuses it)."""
        self._check_open()
        self._closed = True
        if self._buf is None:
            return _EMPTY
        out = [self._step(self._complete_frames(final=True))]
        missing = self._consumed - self._produced
        if missing > 0:
            out.append(np.repeat(self._last_pred.reshape(1, 68, 2), missing, axis=0))
            self._produced += missing
        return self._emit(np.concatenate(out).astype(np.float32), final=True)


class CNNStreamer(Streamer):
    """Streaming of the 2020 CNN / CNN-TC (8 kHz in, 25 fps out); see the module docstring.

    Each layer (4 trunk convs, the conv head) keeps the tail of its input that its next outputs
    still need and computes only its new outputs, so overlapping windows share their trunk work
    as in the fully-convolutional offline pass (320 / 16 = 20 keeps the stride grids aligned):
    per frame 160, 80, 40, 20 new trunk positions and one head output instead of a whole window.

    Args:
        model: a ``cnn`` or ``cnn_tc`` :class:`~tf_talkface.export.TrainedModel`.
        peak: fixed peak normalisation (samples are divided by it); 1.0 = full-scale input.
            Models trained with a loudness input level (issue 11) ignore it and normalise
            causally instead (:class:`~tf_talkface.audio.level.CausalLevel`; offline twin:
            ``python_path_predict(model, y, causal=True)``).
    """

    def __init__(self, model: Any, peak: float = 1.0) -> None:
        import tensorflow as tf

        from tf_talkface.models import cnn as C

        if model.kind not in ("cnn", "cnn_tc"):
            raise ValueError(f"CNNStreamer needs a cnn or cnn_tc model, got {model.kind!r}")
        if not peak > 0:
            raise ValueError(f"peak must be > 0, got {peak!r}")
        self.model, self.peak, self.kind, self.delay = model, float(peak), model.kind, 0
        self.sample_rate = C.SAMPLE_RATE
        self.level = model.level  # loudness: causal level normalisation instead of ``peak``
        self.hop, self.window, self.pad = C.HOP, C.WINDOW, C.PAD
        self.read = C.MIN_PADDED_LENGTH  # samples of a window the trunk reads (2237)
        net = model.net
        self._tc = model.kind == "cnn_tc"
        self._comps = np.asarray(model.basis.components, np.float32)
        self._mean = np.asarray(model.basis.mean, np.float32)
        self._init = model.initial_condition().astype(np.float32)
        n = net.n_out
        if self._tc:
            kernel = np.asarray(net.tc_dense.kernel, np.float32)
            self._w_h, self._w_c = kernel[:n], kernel[n:]
            self._b = np.asarray(net.tc_dense.bias, np.float32)
        # standardised targets (issue 11): the model's fixed read-out, after the head / TC layer
        ts = getattr(net, "target_scale", None)
        self._std = None if ts is None else np.asarray(ts.std, np.float32)
        self._tmean = None if ts is None else np.asarray(ts.mean, np.float32)
        # the temporal post-filter (issue 11): +-K frames of the coefficients, so a frame
        # leaves K frames after its coefficients are computed
        self._filter = None if model.post_filter is None else FilterStream(model.post_filter)
        self.post_filter_frames = 0 if self._filter is None else self._filter.frames
        propagate = cnn_propagate_fn(net)
        self._channels = propagate.channels

        # all layers in one graph call: buffers in, new head outputs + trimmed buffers out
        @tf.function(input_signature=[tf.TensorSpec([None, c], tf.float32)
                                      for c in self._channels[:-1]], autograph=False)
        def run(*bufs):
            out, new_bufs = propagate(list(bufs))
            return (out, *new_bufs)

        self._run = run
        self.reset()

    def reset(self) -> None:
        """Forget the stream (layer buffers, carried coefficients, counters)."""
        self._bufs = [np.zeros((self.pad if i == 0 else 0, c), np.float32)
                      for i, c in enumerate(self._channels[:-1])]
        self.n_samples = 0
        self._c = self._init[None].copy()
        self.frames_emitted = 0
        if self._filter is not None:
            self._filter.reset()
        self._closed = False
        self._agc = (CausalLevel(self.sample_rate, self.hop, self.level)
                     if self.level.mode == "loudness" else None)

    def _propagate(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        """Feed padded-coordinate samples through the layers; returns the new frames."""
        self._bufs[0] = np.concatenate([self._bufs[0], samples[:, None]])
        ready = max(0, (self.pad + self.n_samples - self.read) // self.hop + 1)
        computed = self.frames_emitted + (0 if self._filter is None else self._filter.held)
        if not final and ready <= computed:
            return _EMPTY  # no frame completed: only buffer (the layers run once per frame)
        res = self._run(*self._bufs)
        h = res[0].numpy()
        self._bufs = [v.numpy() for v in res[1:]]
        if self._tc:  # c_t = h_t W_h + b + c_{t-1} W_c, as generate_tc
            drive = h @ self._w_h + self._b
            codes = np.empty_like(drive)
            c = self._c
            for t in range(len(drive)):
                c = drive[t:t + 1] + c @ self._w_c
                if self._std is not None:
                    c = c * self._std + self._tmean
                codes[t] = c[0]
            self._c = c
        else:
            codes = h if self._std is None else h * self._std + self._tmean
        if self._filter is not None:  # the post-filter: emit what has its K later frames
            codes = self._filter.push(codes, final)
        lm = (codes @ self._comps + self._mean).astype(np.float32)
        self.frames_emitted += len(lm)
        return lm.reshape(-1, 68, 2)

    def push(self, chunk: Any) -> np.ndarray:
        """Add samples (float32 (n,), 8 kHz); returns the (k, 68, 2) frames now determined."""
        x = self._accept(chunk)
        if x is None:
            return _EMPTY
        if self._agc is not None:
            return self._propagate(self._agc.push(x))
        scaled = (x.astype(np.float64) / self.peak).astype(np.float32)  # as pad_and_scale
        return self._propagate(scaled)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining frames (windows completed with zeros)."""
        self._check_open()
        self._closed = True
        total = -(-self.n_samples // self.hop)
        if total <= self.frames_emitted:
            return _EMPTY
        # zeros up to the offline padded length 320 (F - 1) + 2240
        fed = self.pad + self.n_samples
        out = self._propagate(np.zeros(self.hop * (total - 1) + self.window - fed, np.float32),
                              final=True)
        if self.frames_emitted != total:  # pragma: no cover - guarded by the arithmetic
            raise AssertionError(f"emitted {self.frames_emitted} frames, expected {total}")
        return out


def streamer_for(model: Any, peak: float = 1.0) -> Streamer:
    """The Python streamer of a :class:`~tf_talkface.export.TrainedModel`: an
    :class:`LSTMStreamer` (``lstm``) or a :class:`CNNStreamer` (``cnn``, ``cnn_tc``; ``peak``:
    its fixed peak normalisation, CNN only).

    Raises:
        ValueError: ``peak <= 0`` (CNN), or a model without the layers its kind needs.
    """
    if model.kind == "lstm":
        return LSTMStreamer(model)
    return CNNStreamer(model, peak=peak)


def generate_long(model: Any, waveform: Any, chunk_seconds: float = 30.0,
                  peak: float | None = 1.0) -> np.ndarray:
    """Offline generation of long audio with bounded memory (chunks with carried state).

    Args:
        model: a :class:`~tf_talkface.export.TrainedModel` (Python streamer) or a
            :class:`~tf_talkface.saved_model.LoadedModel` (its ``stream_*`` signatures).
        waveform: float mono (samples,) at ``model.sample_rate`` (a numpy memmap works too).
        chunk_seconds: audio per step; memory is O(chunk), not O(clip).
        peak: CNN models: fixed normalisation (see the module docstring); ``None`` = the clip's
            own peak (one pass over the waveform to find it, like the offline default).

    Returns:
        float32 (frames, 68, 2), equal to the one-go offline path.
    """
    y = np.asarray(waveform)
    peak = streaming_peak(model.kind, y, peak)
    s = model.streamer(peak=peak) if hasattr(model, "streamer") else streamer_for(model, peak)
    return stream_in_chunks(s, y, chunk_seconds)


# ----------------------------------------------------------------------------- CLI

def open_streamer(source: str | os.PathLike | None = None, peak: float = 1.0) -> Streamer:
    """A streamer for any model form: an exported SavedModel folder (``saved_models/NAME`` or
    ``saved_models/NAME/VERSION``; runs its ``stream_*`` signatures,
    :class:`~tf_talkface.stream_graph.SignatureStreamer`), a checkpoint ``NAME.json`` or a
    training run folder (the Python :class:`LSTMStreamer` / :class:`CNNStreamer`). ``None``:
    the bundled default SavedModel (as ``generate``).

    Raises:
        tf_talkface.saved_model.ModelError, tf_talkface.export.ExportError: not a model.
        ValueError: ``peak <= 0``.
    """
    if source is not None:
        p = Path(source)
        saved = p.is_dir() and ((p / CARD_FILE).is_file() or (p / "saved_model.pb").is_file()
                                or any(v.is_dir() and v.name.isdigit() for v in p.iterdir()))
        if not saved:
            return streamer_for(load_trained(p), peak=peak)
        source = resolve_model_dir(p)
    return load_model(source).streamer(peak=peak)


def _chunks_from_wav(path: str, sample_rate: int, chunk: int):
    from tf_talkface.audio.io import load_audio

    y = load_audio(path, sample_rate)  # AudioError: missing/empty/not audio/no track/NaN
    for i in range(0, len(y), chunk):
        yield y[i:i + chunk]


def _chunks_from_stdin(fmt: str, chunk: int):
    dtype = np.float32 if fmt == "f32" else np.int16
    width = np.dtype(dtype).itemsize
    stream = sys.stdin.buffer
    rest = b""
    while True:
        data = stream.read(chunk * width)
        if not data:
            break
        data = rest + data
        n = len(data) // width * width
        rest = data[n:]
        x = np.frombuffer(data[:n], dtype)
        yield x.astype(np.float32) / (32768.0 if dtype == np.int16 else 1.0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_talkface.stream",
        description="Stream audio through a trained model in chunks (as a live source would) "
                    "and write the landmarks (frames, 68, 2) to a .npy file.")
    p.add_argument("-m", "--model", default=None,
                   help="exported SavedModel folder (saved_models/NAME[/VERSION]; runs its "
                        "streaming signatures), checkpoint NAME.json or training run folder "
                        "(default: the bundled default model)")
    p.add_argument("-i", "--input", required=True,
                   help="audio file (resampled to the model's rate) or '-' for raw mono PCM on "
                        "stdin at the model's rate (44100 Hz lstm, 8000 Hz cnn)")
    p.add_argument("--format", choices=("f32", "s16"), default="f32",
                   help="stdin sample format: float32 or int16 little-endian (default f32)")
    p.add_argument("--chunk", type=int, default=640, help="samples per chunk (default 640)")
    p.add_argument("-o", "--output", required=True, help="output .npy")
    p.add_argument("--peak", type=float, default=1.0,
                   help="CNN models with the paper's peak normalisation: the fixed peak (default "
                        "1.0 = full scale); models with a loudness input level (the default "
                        "model) normalise causally and ignore it")
    p.add_argument("-v", "--verbose", action="store_true", help="print frames emitted per chunk")
    from tf_talkface.animate.animator import add_photo_arguments

    add_photo_arguments(p)
    g = p.add_argument_group("talking photo output (with --image)")
    g.add_argument("--video", metavar="OUT.mp4", help="write the photo frames to this mp4 as "
                                                      "they are rendered (with the input's sound)")
    g.add_argument("--frames", metavar="DIR", help="write each photo frame as DIR/frame_NNNNNN.png "
                                                   "as soon as it is rendered")
    g.add_argument("--size", type=int, default=None,
                   help="cap of the video's shorter side in pixels (default 1080)")
    return p


def _photo_session(args, s):
    """The :class:`~tf_talkface.animate.animator.PhotoStream` for ``--image`` (photo loaded,
    neutral = the streamer's own output for silence)."""
    from tf_talkface.animate.animator import PhotoAnimator, PhotoStream, settings_from_args
    from tf_talkface.animate.motion import model_neutral
    from tf_talkface.animate.photo import DEFAULT_SIZE, load_photo
    from tf_talkface.assets import resolve

    photo = load_photo(resolve(args.image, "photo"), size=args.size or DEFAULT_SIZE,
                       crop=args.crop, face_index=args.face_index)
    for note in photo.notes:
        print(f"stream: {photo.path}: {note}", file=sys.stderr)
    anim = PhotoAnimator(photo, model_neutral(s), settings_from_args(args))
    return PhotoStream(s, anim)


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 on success, 1 when the model, the input or the output fails (one line on
    stderr naming it; no output file is written), 2 for bad arguments."""
    args = build_parser().parse_args(argv)
    if args.chunk < 1:
        print("stream: error: --chunk must be >= 1", file=sys.stderr)
        return 2
    if not np.isfinite(args.peak) or args.peak <= 0:
        print("stream: error: --peak must be a finite number > 0", file=sys.stderr)
        return 2
    if args.image is None and (args.video or args.frames):
        print("stream: error: --video/--frames need --image PHOTO", file=sys.stderr)
        return 2
    if args.image is not None and not (args.video or args.frames):
        print("stream: error: --image needs --video OUT.mp4 and/or --frames DIR", file=sys.stderr)
        return 2
    if args.video and not args.video.lower().endswith(".mp4"):
        print("stream: error: --video must end in .mp4", file=sys.stderr)
        return 2
    if args.size is not None and args.size < 64:
        print("stream: error: --size must be at least 64", file=sys.stderr)
        return 2
    from tf_talkface.assets import resolve

    args.input = args.input if args.input == "-" else str(resolve(args.input, "speech"))
    try:
        s = open_streamer(args.model, peak=args.peak)
        ps = _photo_session(args, s) if args.image is not None else None
    except (ExportError, ModelError, ValueError) as e:   # PhotoError/MeshError are ValueErrors
        print(f"stream: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"stream: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    where = "stdin" if args.input == "-" else args.input
    src = (_chunks_from_stdin(args.format, args.chunk) if args.input == "-"
           else _chunks_from_wav(args.input, s.sample_rate, args.chunk))
    out = []
    n_written = [0]

    def sink(frames):
        """--frames: each photo frame written as a PNG the moment it is rendered."""
        if args.frames:
            from tf_talkface.viz.video_io import write_png

            for fr in frames:
                write_png(Path(args.frames) / f"frame_{n_written[0]:06d}.png", fr)
                n_written[0] += 1
        else:
            n_written[0] += len(frames)
        return frames

    def run():
        """Push every chunk (and flush); yield the photo frames as they are rendered."""
        nonlocal src
        with warnings.catch_warnings(record=True) as caught:  # a truncated file: one line
            warnings.simplefilter("always", AudioWarning)
            first = next(src, None)  # file input: decodes it (AudioError below)
        for w in caught:
            if issubclass(w.category, AudioWarning):
                print(f"stream: warning: {w.message}", file=sys.stderr)
        src = itertools.chain([] if first is None else [first], src)
        for i, x in enumerate(src):
            if not np.all(np.isfinite(x)):
                bad = int(np.count_nonzero(~np.isfinite(x)))
                raise AudioError(f"{where}: chunk {i} holds {bad} NaN/Inf sample(s); refusing "
                                 "non-finite audio (no output written)")
            if ps is None:
                f = s.push(x)
            else:
                f, frames = ps.push(x)
                yield from sink(frames)
            out.append(f)
            if args.verbose:
                print(f"chunk {i}: {len(x)} samples -> {len(f)} frames", file=sys.stderr)
        if s.n_samples == 0:
            raise AudioError(f"{where}: no audio (0 samples{' before end of input' if args.input == '-' else ''});"
                             " nothing to animate")
        if ps is None:
            f = s.flush()
        else:
            f, frames = ps.flush()
            yield from sink(frames)
        out.append(f)
        if args.verbose:
            print(f"flush -> {len(f)} frames", file=sys.stderr)

    try:
        if ps is not None and args.video:
            from tf_talkface.animate.animator import write_mp4

            write_mp4(args.video, run(), audio=None if args.input == "-" else args.input)
        else:
            for _ in run():
                pass
    except AudioError as e:  # missing/empty/not audio/no audio track/NaN: one line
        print(f"stream: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # stdin read error, --frames/--video not writable
        print(f"stream: error: {os_error_message(e, where)}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # ffmpeg could not encode --video
        print(f"stream: error: {args.video}: {e}", file=sys.stderr)
        return 1
    lm = np.concatenate(out).astype(np.float32)
    if not np.all(np.isfinite(lm)):
        print(f"stream: error: the model produced non-finite landmarks for {where}; nothing "
              f"written (is the model broken?)", file=sys.stderr)
        return 1
    try:
        save_npy(args.output, lm)  # atomic
    except OSError as e:  # read-only/full disk, -o a folder, permission denied
        print(f"stream: error: cannot write {args.output}: {os_error_message(e, args.output)}",
              file=sys.stderr)
        return 1
    print(f"{lm.shape[0]} frames ({s.n_samples} samples, {s.sample_rate} Hz; algorithmic latency "
          f"{s.latency_ms:.3f} ms) -> {args.output}"
          + (f"; {n_written[0]} photo frames -> " + ", ".join(x for x in (args.video, args.frames) if x)
             if ps is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
