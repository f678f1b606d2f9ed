"""Streaming in the graph: state in, state out, for the SavedModel streaming signatures.

A server (TF Serving, or any process holding a SavedModel) keeps one *session* per live audio
stream: the session state is a small dict of tensors that the client (or the server's session
store) passes back on every call. Three signatures, added to every export by
:mod:`tf_talkface.export`:

``stream_init(peak)``
    ``peak``: float32 scalar; the fixed peak normalisation of the CNN streams (samples are
    divided by it; 1.0 = full-scale float input, see :mod:`tf_talkface.stream`). The LSTM
    ignores it (the 2018 features are not level-normalised). Returns the initial state:
    the ``state_*`` tensors.
``stream_step(audio, state_*)``
    ``audio``: float32 (n,) samples at the model's rate (``model_card.json``: 44100 Hz for the
    LSTM, 8000 Hz for the CNN), any n >= 0. Returns ``landmarks`` float32 (k, 68, 2): the
    k >= 0 frames (25 fps) newly determined, plus the new ``state_*``.
``stream_flush(state_*)``
    End of stream: returns ``landmarks`` (k, 68, 2), the remaining frames. The state is spent.

The concatenation of every ``landmarks`` a session returns equals offline generation of the
whole stream (``serving_default``) to 1e-5, for any chunking, and equals the Python
:class:`~tf_talkface.stream.Streamer` (same algorithm, same emission schedule and latency; see
:mod:`tf_talkface.stream` for the algorithm and the latency figures). Clients treat the state as
opaque: pass back every output whose name starts with ``state_`` under the same name. Shapes of
some state tensors vary between calls (pending samples, layer buffers). Its contents:

LSTM (2018; :class:`LSTMStreamGraph`)
    ``state_pending`` f32 (m,): samples not yet in a complete STFT frame (reflect-padded
    coordinates once the stream has started); ``state_tail`` f32 (<= 883,): the last
    ``n_fft/2 + 1`` raw samples (end reflection); ``state_samples`` i64: samples pushed;
    ``state_frames`` i32: STFT frames computed; ``state_logmel`` f32 (2, 64): the last 2 log-mel
    rows (deltas); ``state_context`` f32 (context, 128): the last delta-feature rows, newest
    first (context window); ``state_lstm`` f32 (1, 1808): the LSTM states packed
    ``[h1, c1, h2, c2, h3, c3, h4, c4]`` (256, 256, 256, 136 units); ``state_last`` f32 (136,):
    the last prediction (repeated at the end, as offline); ``state_consumed`` /
    ``state_emitted`` i32: frames through the LSTM / determined (the delay undone). With a
    post-filter (issue 11) ``state_post_filter`` f32 (<= 2K + 1, 136): the determined frames
    not yet filtered (as the CNN's below).
CNN (2020; :class:`CNNStreamGraph`)
    ``state_buffer0`` .. ``state_buffer4`` f32 (m_i, channels_i): the input tail each layer
    still needs (waveform, 3 trunk layers, trunk output for the conv head); ``state_coefficients``
    f32 (1, n_out): the previous frame's PCA coefficients (``cnn_tc``'s temporal condition;
    the template's at the start); ``state_samples`` i64; ``state_emitted`` i32; ``state_peak``
    f32. Models with a loudness input level (issue 11) add the causal level estimate
    (:class:`~tf_talkface.audio.level.CausalLevel`): ``state_level_estimate`` f64,
    ``state_level_accepted`` i64, ``state_level_history`` f64 (10,), ``state_level_frames`` i64,
    ``state_level_pending`` f32 (< 320,); their ``peak`` is unused. Models with a temporal
    post-filter over +-K frames (issue 11) add ``state_post_filter`` f32 (<= 2K + 1, n_out):
    the coefficients not yet filtered (the filter's padding first: K zero rows at the start,
    or for ``"edge"`` padding none until the first frame, which then enters K + 1 times;
    frames through the network = ``state_emitted`` + max(0, its rows - K)).

Size of a session: LSTM ~ 9 KB + up to 7 KB of pending audio; CNN ~ 40 KB (the head's 121
trunk positions x 64 channels dominate). Compute per 40-ms frame is what
``scripts/bench_stream.py`` measures for the Python streamer (same graph work plus one
signature call).

Plain TF ops only (no tensorflow-io), so TF Serving loads them. :class:`SignatureStreamer` runs
the signatures of a loaded SavedModel with the :class:`~tf_talkface.stream.Streamer` interface
(``push``/``flush``/``reset``); it is how the tests check the signatures, and the reference for
a client holding sessions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tf_talkface.audio.level import block_frames, causal_level_init_tf, causal_level_step_tf

from tf_talkface.streamer import Streamer, stream_latency_ms

__all__ = ["STATE_PREFIX", "stream_latency_ms", "stream_graph_for", "LSTMStreamGraph", "CNNStreamGraph",
           "cnn_propagate_fn", "SignatureStreamer"]

STATE_PREFIX = "state_"


def stream_graph_for(model: Any) -> "LSTMStreamGraph | CNNStreamGraph":
    """The in-graph streamer of a :class:`~tf_talkface.export.TrainedModel`."""
    return LSTMStreamGraph(model) if model.kind == "lstm" else CNNStreamGraph(model)


class _StreamGraph:
    """Common signature plumbing: ``state_specs`` (ordered name -> TensorSpec), and the three
    functions with positional state arguments in that order (what ``tf.function`` signatures
    need)."""

    state_specs: dict

    def signature_fns(self) -> dict:
        """``{"stream_init": (fn, specs), "stream_step": ..., "stream_flush": ...}`` for export."""
        import tensorflow as tf

        names = list(self.state_specs)
        specs = [tf.TensorSpec(s.shape, s.dtype, name=n) for n, s in self.state_specs.items()]

        def init(peak):
            return self.init(peak)

        def step(audio, *state):
            return self.step(audio, dict(zip(names, state)))

        def flush(*state):
            return {"landmarks": self.flush(dict(zip(names, state)))}

        return {
            "stream_init": (init, [tf.TensorSpec([], tf.float32, name="peak")]),
            "stream_step": (step, [tf.TensorSpec([None], tf.float32, name="audio")] + specs),
            "stream_flush": (flush, specs),
        }

    def init(self, peak: Any) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, audio: Any, state: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def flush(self, state: dict) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _GraphFilter:
    """In-graph twin of :class:`~tf_talkface.stream.FilterStream` (a temporal post-filter over
    +-K frames, issue 11): the state ``state_post_filter`` holds the rows not yet filtered."""

    def __init__(self, layer: Any) -> None:
        import tensorflow as tf

        self.frames, self.edge = int(layer.frames), layer.padding == "edge"
        self.kernel = tf.constant(np.asarray(layer.kernel, np.float32))
        self.bias = tf.constant(np.asarray(layer.bias, np.float32))
        self.dim = int(self.bias.shape[0])

    def spec(self) -> Any:
        import tensorflow as tf

        return tf.TensorSpec([None, self.dim], tf.float32)

    def init(self) -> Any:
        """K zero rows before the stream, or none yet for edge padding."""
        import tensorflow as tf

        return tf.zeros([0 if self.edge else self.frames, self.dim], tf.float32)

    def held(self, buf: Any) -> Any:
        """Frames pushed and not yet returned."""
        import tensorflow as tf

        return tf.maximum(0, tf.shape(buf)[0] - self.frames)

    def push(self, buf: Any, rows: Any, final: Any) -> tuple:
        """``(filtered frames now determined (m, dim), new buffer)``; ``final``: a bool tensor,
        the end of the stream (the padding after the last frame is appended)."""
        import tensorflow as tf

        k = self.frames
        if self.edge:  # the first frame repeated K times before the stream
            first = tf.repeat(rows[:1], k * tf.cast(tf.equal(tf.shape(buf)[0], 0), tf.int32), 0)
            buf = tf.concat([buf, first, rows], 0)
        else:
            buf = tf.concat([buf, rows], 0)
        buf = tf.cond(final, lambda: tf.concat(
            [buf, tf.repeat(buf[-1:], k, 0) if self.edge
             else tf.zeros([k, self.dim], tf.float32)], 0), lambda: buf)
        n = tf.maximum(0, tf.shape(buf)[0] - 2 * k)
        out = tf.cond(n > 0, lambda: tf.nn.conv1d(buf[None], self.kernel, 1, "VALID")[0]
                      + self.bias, lambda: tf.zeros([0, self.dim], tf.float32))
        return out, buf[n:]


class LSTMStreamGraph(_StreamGraph):
    """In-graph twin of :class:`~tf_talkface.stream.LSTMStreamer` (2018 LSTM, 44.1 kHz).

    Same front-end ops as :class:`~tf_talkface.audio.layers.LogMelDeltas` on complete frames,
    the same :class:`~tf_talkface.models.lstm.StackedLSTMInference` as the offline SavedModel,
    carried states; see the module docstring for the state layout.
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        from tf_talkface.audio.layers import LogMelDeltas
        from tf_talkface.config import LogMelConfig
        from tf_talkface.models.lstm import StackedLSTMInference

        self.front = LogMelDeltas.from_logmel_config(LogMelConfig())
        cfg = self.front.cfg
        self.sample_rate = cfg.sample_rate
        self.n_fft, self.hop, self.pad, self.n_mels = cfg.n_fft, cfg.hop_length, cfg.n_fft // 2, cfg.n_mels
        self.delay, self.context = int(model.delay), int(model.context)
        self.stack = StackedLSTMInference(model.net)
        self.out_dim = self.stack.output_dim
        self.filter = None if model.post_filter is None else _GraphFilter(model.post_filter)
        n_state = 2 * sum(self.stack.units)
        f32, i32 = tf.float32, tf.int32
        self.state_specs = {
            "state_pending": tf.TensorSpec([None], f32),
            "state_tail": tf.TensorSpec([None], f32),
            "state_samples": tf.TensorSpec([], tf.int64),
            "state_frames": tf.TensorSpec([], i32),
            "state_logmel": tf.TensorSpec([2, self.n_mels], f32),
            "state_context": tf.TensorSpec([self.context, 2 * self.n_mels], f32),
            "state_lstm": tf.TensorSpec([1, n_state], f32),
            "state_last": tf.TensorSpec([self.out_dim], f32),
            "state_consumed": tf.TensorSpec([], i32),
            "state_emitted": tf.TensorSpec([], i32),
        }
        if self.filter is not None:
            self.state_specs["state_post_filter"] = self.filter.spec()

    def init(self, peak: Any) -> dict:
        """Initial state (``peak`` is ignored by the LSTM)."""
        import tensorflow as tf

        del peak
        state = {n: tf.zeros([0 if d is None else d for d in s.shape], s.dtype)
                 for n, s in self.state_specs.items()}
        if self.filter is not None:
            state["state_post_filter"] = self.filter.init()
        return state

    def _emit(self, landmarks, state, final):
        """Determined frames (k, 68, 2) -> (what leaves now, state updates): the post-filter."""
        import tensorflow as tf

        if self.filter is None:
            return landmarks, {}
        out, buf = self.filter.push(state["state_post_filter"],
                                    tf.reshape(landmarks, [-1, self.out_dim]), tf.constant(final))
        return tf.reshape(out, [-1, 68, 2]), {"state_post_filter": buf}

    # ------------------------------------------------------------------ pieces
    def _frames(self, buf, k):
        import tensorflow as tf

        idx = tf.range(k)[:, None] * self.hop + tf.range(self.n_fft)[None]
        return tf.reshape(tf.gather(buf, idx), [k, self.n_fft]), buf[k * self.hop:]

    def _features(self, frames, state):
        """Complete frames (k, n_fft) -> (context-stacked features (k, dim), state updates)."""
        import tensorflow as tf

        k, t0 = tf.shape(frames)[0], state["state_frames"]
        lm = self.front.logmel_frames(frames)                    # (k, n_mels)
        ext = tf.concat([state["state_logmel"], lm], axis=0)     # global rows t0-2 .. t0+k-1
        d1 = ext[1:] - ext[:-1]                                  # global rows t0-1 ..
        d2 = d1[1:] - d1[:-1]                                    # global rows t0 ..
        g = (t0 + tf.range(k))[:, None]
        d1 = tf.where(g >= 1, d1[1:], 0.0)                       # zero rows prepended, as offline
        d2 = tf.where(g >= 2, d2, 0.0)
        f = tf.concat([d1, d2], axis=-1)
        upd = {"state_logmel": ext[-2:], "state_frames": t0 + k}
        c = self.context
        if c == 0:
            return f, upd
        hist = tf.cond(tf.logical_and(tf.equal(t0, 0), k > 0),
                       lambda: tf.repeat(f[:1], c, axis=0),      # first frame repeated, as offline
                       lambda: state["state_context"])
        ext_f = tf.concat([tf.reverse(hist, [0]), f], axis=0)    # global rows t0-c .. t0+k-1
        x = tf.concat([ext_f[c - j: c - j + k] for j in range(c + 1)], axis=-1)
        upd["state_context"] = tf.reverse(ext_f[-c:], [0])
        return x, upd

    def _advance(self, frames, state):
        """Complete frames -> (newly determined landmark frames (k', 68, 2), state updates)."""
        import tensorflow as tf

        x, upd = self._features(frames, state)
        sizes = [u for u in self.stack.units for _ in (0, 1)]
        states = tf.split(state["state_lstm"], sizes, axis=1)
        y, states = self.stack(x[None], states, return_states=True)
        y = y[0]
        k = tf.shape(y)[0]
        first = state["state_consumed"]
        keep = y[tf.maximum(0, self.delay - first):]             # prediction j -> frame j - delay
        upd.update(state_lstm=tf.concat(states, axis=1),
                   state_last=tf.cond(k > 0, lambda: y[-1], lambda: state["state_last"]),
                   state_consumed=first + k,
                   state_emitted=state["state_emitted"] + tf.shape(keep)[0])
        return tf.reshape(keep, [-1, 68, 2]), upd

    # ------------------------------------------------------------------ signatures
    def step(self, audio: Any, state: dict) -> dict:
        """One chunk: ``{"landmarks": (k, 68, 2), **new state}`` (see the module docstring)."""
        import tensorflow as tf

        audio = tf.reshape(tf.cast(audio, tf.float32), [-1])
        pad = self.pad
        n0 = state["state_samples"]
        n1 = n0 + tf.cast(tf.size(audio), tf.int64)
        pending = tf.concat([state["state_pending"], audio], axis=0)
        started = n1 > pad
        pending = tf.cond(tf.logical_and(n0 <= pad, started),     # start reflection, once
                          lambda: tf.concat([tf.reverse(pending[1:pad + 1], [0]), pending], 0),
                          lambda: pending)
        k = tf.where(started, tf.maximum(0, (tf.size(pending) - self.n_fft) // self.hop + 1), 0)
        frames, pending = self._frames(pending, k)
        landmarks, upd = self._advance(frames, state)
        landmarks, fupd = self._emit(landmarks, state, final=False)
        new = dict(state, **upd, **fupd)
        new.update(state_pending=pending, state_samples=n1,
                   state_tail=tf.concat([state["state_tail"], audio], 0)[-(pad + 1):])
        return {"landmarks": landmarks, **new}

    def flush(self, state: dict) -> Any:
        """End of stream: the remaining frames (k, 68, 2) (end reflection, then the delayed
        last frames repeated, as offline); none for a stream shorter than ``n_fft/2 + 1``."""
        import tensorflow as tf

        n, pad = state["state_samples"], self.pad

        def finish():
            tail = state["state_tail"]
            buf = tf.concat([state["state_pending"], tf.reverse(tail[-(pad + 1):-1], [0])], 0)
            total = 1 + tf.cast((n + 2 * pad - self.n_fft) // self.hop, tf.int32)
            frames, _ = self._frames(buf, tf.maximum(0, total - state["state_frames"]))
            out, upd = self._advance(frames, state)
            missing = upd["state_consumed"] - upd["state_emitted"]
            rep = tf.repeat(tf.reshape(upd["state_last"], [1, 68, 2]), tf.maximum(missing, 0), 0)
            return self._emit(tf.concat([out, rep], 0), state, final=True)[0]

        return tf.cond(n > pad, finish, lambda: tf.zeros([0, 68, 2], tf.float32))


def cnn_propagate_fn(net: Any):
    """The layer-by-layer streaming step of a 2020 CNN (graph-compatible function).

    Returns ``propagate(bufs) -> (out, new_bufs)``: ``bufs`` are 5 float32 (m_i, channels_i)
    input tails (waveform, trunk layers 1-3 outputs, trunk output); each layer computes only
    the outputs its buffer now completes (valid padding, its stride) and keeps the tail its
    next outputs need; ``out`` float32 (k, n_out) are the k new head outputs (PCA
    coefficients for ``cnn``, the TC drive's input ``h`` for ``cnn_tc``).
    Used by :class:`~tf_talkface.stream.CNNStreamer` and :class:`CNNStreamGraph`.
    """
    import tensorflow as tf

    pairs = list(zip(net.convs, net.acts)) + [(net.head, net.head_act)]
    geometry = [(int(c.kernel_size[0]), int(c.strides[0])) for c, _ in pairs]
    channels = [1] + [int(c.filters) for c, _ in pairs]

    def propagate(bufs):
        new_bufs, out = [], None
        for i, ((k, stride), (conv, act)) in enumerate(zip(geometry, pairs)):
            buf = bufs[i] if out is None else tf.concat([bufs[i], out], axis=0)
            m = tf.maximum((tf.shape(buf)[0] - k) // stride + 1, 0)
            out = tf.cond(
                m > 0,
                lambda buf=buf, m=m, k=k, stride=stride, conv=conv, act=act:
                    act(conv(buf[None, :stride * (m - 1) + k]))[0],
                lambda c=channels[i + 1]: tf.zeros([0, c], tf.float32))
            new_bufs.append(buf[stride * m:])
        return out, new_bufs

    propagate.channels = channels
    return propagate


class CNNStreamGraph(_StreamGraph):
    """In-graph twin of :class:`~tf_talkface.stream.CNNStreamer` (2020 CNN / CNN-TC, 8 kHz).

    See the module docstring for the state layout. The TC recurrence runs as a ``tf.scan``
    over the new frames; the PCA reconstruction as one matmul.
    """

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        from tf_talkface.models import cnn as C

        if model.kind not in ("cnn", "cnn_tc"):
            raise ValueError(f"CNNStreamGraph needs a cnn or cnn_tc model, got {model.kind!r}")
        net = model.net
        self.sample_rate, self.hop, self.window, self.pad = C.SAMPLE_RATE, C.HOP, C.WINDOW, C.PAD
        self.read = C.MIN_PADDED_LENGTH
        self.propagate = cnn_propagate_fn(net)
        self.channels = self.propagate.channels
        self.tc = model.kind == "cnn_tc"
        self.n_out = int(net.n_out)
        self.comps = tf.constant(np.asarray(model.basis.components, np.float32))
        self.mean = tf.constant(np.asarray(model.basis.mean, np.float32))
        self.init_codes = tf.constant(model.initial_condition().astype(np.float32)[None])
        if self.tc:
            kernel = np.asarray(net.tc_dense.kernel, np.float32)
            self.w_h = tf.constant(kernel[:self.n_out])
            self.w_c = tf.constant(kernel[self.n_out:])
            self.b = tf.constant(np.asarray(net.tc_dense.bias, np.float32))
        ts = getattr(net, "target_scale", None)  # standardised targets: the fixed read-out
        self.t_std = None if ts is None else tf.constant(np.asarray(ts.std, np.float32))
        self.t_mean = None if ts is None else tf.constant(np.asarray(ts.mean, np.float32))
        # +-K frames of coefficients (issue 11)
        self.filter = None if model.post_filter is None else _GraphFilter(model.post_filter)
        f32 = tf.float32
        self.level = model.level
        self.state_specs = {f"state_buffer{i}": tf.TensorSpec([None, c], f32)
                            for i, c in enumerate(self.channels[:-1])}
        if self.level.mode == "loudness":  # the causal level estimate (audio.level.CausalLevel)
            self.state_specs.update({"state_level_estimate": tf.TensorSpec([], tf.float64),
                                     "state_level_accepted": tf.TensorSpec([], tf.int64),
                                     "state_level_history": tf.TensorSpec([None], tf.float64),
                                     "state_level_frames": tf.TensorSpec([], tf.int64),
                                     "state_level_pending": tf.TensorSpec([None], f32)})
        if self.filter is not None:
            self.state_specs["state_post_filter"] = self.filter.spec()
        self.state_specs.update({
            "state_coefficients": tf.TensorSpec([1, self.n_out], f32),
            "state_samples": tf.TensorSpec([], tf.int64),
            "state_emitted": tf.TensorSpec([], tf.int32),
            "state_peak": tf.TensorSpec([], f32),
        })

    def init(self, peak: Any) -> dict:
        """Initial state: 1120 zeros in front of the waveform (as ``pad_and_scale``), the
        template's coefficients, the fixed ``peak``."""
        import tensorflow as tf

        peak = tf.cast(peak, tf.float32)
        check = tf.debugging.assert_positive(peak, message="stream_init: peak must be > 0")
        with tf.control_dependencies([check]):
            peak = tf.identity(peak)
        state = {f"state_buffer{i}": tf.zeros([self.pad if i == 0 else 0, c], tf.float32)
                 for i, c in enumerate(self.channels[:-1])}
        state.update(state_coefficients=self.init_codes, state_samples=tf.constant(0, tf.int64),
                     state_emitted=tf.constant(0, tf.int32), state_peak=peak)
        if self.level.mode == "loudness":
            nb = block_frames(self.sample_rate, self.hop, self.level)
            state.update({f"state_{k}": v for k, v in causal_level_init_tf(nb).items()})
        if self.filter is not None:
            state.update(state_post_filter=self.filter.init())
        return state

    def _scale(self, codes):
        return codes if self.t_std is None else codes * self.t_std + self.t_mean

    def _advance(self, samples, state, final):
        import tensorflow as tf

        names = [f"state_buffer{i}" for i in range(len(self.channels) - 1)]
        bufs = [state[n] for n in names]
        bufs[0] = tf.concat([bufs[0], samples[:, None]], axis=0)
        ready = tf.maximum(0, tf.cast((self.pad + state["state_samples"] - self.read) // self.hop,
                                      tf.int32) + 1)
        computed = state["state_emitted"]  # frames through the network
        if self.filter is not None:
            computed += self.filter.held(state["state_post_filter"])
        run = tf.logical_or(final, ready > computed)
        h, bufs = tf.cond(run, lambda: self.propagate(bufs),
                          lambda: (tf.zeros([0, self.n_out], tf.float32), bufs))
        c = state["state_coefficients"]
        if self.tc:  # c_t = h_t W_h + b + c_{t-1} W_c, as models.cnn.generate_tc
            drive = tf.matmul(h, self.w_h) + self.b
            seq = tf.scan(lambda prev, d: self._scale(d[None] + tf.matmul(prev, self.w_c)), drive,
                          initializer=c)
            codes = tf.reshape(seq, [-1, self.n_out])
            c = tf.cond(tf.shape(codes)[0] > 0, lambda: codes[-1:], lambda: c)
        else:
            codes = self._scale(h)
        upd = dict(zip(names, bufs))
        if self.filter is not None:  # emit the frames whose K later coefficients exist
            codes, upd["state_post_filter"] = self.filter.push(state["state_post_filter"],
                                                               codes, final)
        lm = tf.reshape(tf.matmul(codes, self.comps) + self.mean, [-1, 68, 2])
        upd.update(state_coefficients=c, state_emitted=state["state_emitted"] + tf.shape(lm)[0])
        return lm, upd

    def step(self, audio: Any, state: dict) -> dict:
        """One chunk: ``{"landmarks": (k, 68, 2), **new state}``."""
        import tensorflow as tf

        audio = tf.reshape(tf.cast(audio, tf.float32), [-1])
        if self.level.mode == "loudness":  # causal level normalisation (peak unused)
            lv = {k[len("state_"):]: v for k, v in state.items() if k.startswith("state_level_")}
            scaled, lv = causal_level_step_tf(audio, lv, self.sample_rate, self.hop, self.level)
            state = dict(state, **{f"state_{k}": v for k, v in lv.items()})
        else:
            scaled = tf.cast(tf.cast(audio, tf.float64) / tf.cast(state["state_peak"], tf.float64),
                             tf.float32)  # as pad_and_scale
        state = dict(state, state_samples=state["state_samples"] + tf.cast(tf.size(audio), tf.int64))
        lm, upd = self._advance(scaled, state, final=tf.constant(False))
        return {"landmarks": lm, **dict(state, **upd)}

    def flush(self, state: dict) -> Any:
        """End of stream: the remaining frames, windows completed with zeros as offline."""
        import tensorflow as tf

        n = state["state_samples"]
        total = tf.cast((n + self.hop - 1) // self.hop, tf.int32)

        def finish():
            fed = self.pad + n
            zeros = tf.zeros([tf.cast(self.hop * (tf.cast(total, tf.int64) - 1) + self.window - fed,
                                      tf.int32)], tf.float32)
            return self._advance(zeros, state, final=tf.constant(True))[0]

        return tf.cond(total > state["state_emitted"], finish,
                       lambda: tf.zeros([0, 68, 2], tf.float32))


class SignatureStreamer(Streamer):
    """The :class:`~tf_talkface.stream.Streamer` interface over a SavedModel's streaming
    signatures: holds one session's state dict between calls, as a server would.

    Args:
        module: the loaded SavedModel (``tf.saved_model.load``) with ``stream_init``,
            ``stream_step``, ``stream_flush`` signatures (exports since issue 6).
        kind: ``"lstm"``, ``"cnn"`` or ``"cnn_tc"`` (model card ``model``).
        sample_rate: the model's rate in Hz (model card ``sample_rate``).
        delay: the frame delay (model card ``delay``; 0 for the CNNs).
        peak: fixed peak normalisation for CNN models (ignored by the LSTM).
        post_filter_frames: K of a CNN's post-filter (model card ``post_filter_frames``; only
            the latency figures use it).

    Raises:
        ValueError: the SavedModel has no streaming signatures (exported before they existed),
            or ``peak <= 0``.
    """

    def __init__(self, module: Any, kind: str, sample_rate: int, delay: int = 0,
                 peak: float = 1.0, post_filter_frames: int = 0) -> None:
        sigs = module.signatures
        missing = [k for k in ("stream_init", "stream_step", "stream_flush") if k not in sigs]
        if missing:
            raise ValueError(f"SavedModel has no streaming signature(s) {missing}; re-export it "
                             "with python -m tf_talkface.export")
        if not peak > 0:
            raise ValueError(f"peak must be > 0, got {peak!r}")
        self._init, self._step, self._flush = (sigs["stream_init"], sigs["stream_step"],
                                               sigs["stream_flush"])
        self.model, self.kind, self.delay = module, kind, int(delay)
        self.post_filter_frames = int(post_filter_frames)
        self.sample_rate, self.peak = int(sample_rate), float(peak)
        self.reset()

    def reset(self) -> None:
        """Start a new session."""
        import tensorflow as tf

        self._state = self._init(peak=tf.constant(self.peak, tf.float32))
        self.n_samples = self.frames_emitted = 0
        self._closed = False

    def push(self, chunk: Any) -> np.ndarray:
        """Samples float32 (n,) at ``sample_rate`` -> the (k, 68, 2) frames now determined."""
        import tensorflow as tf

        x = self._accept(chunk)
        if x is None:
            return np.zeros((0, 68, 2), np.float32)
        out = self._step(audio=tf.constant(x), **self._state)
        self._state = {k: v for k, v in out.items() if k.startswith(STATE_PREFIX)}
        lm = out["landmarks"].numpy()
        self.frames_emitted += len(lm)
        return lm

    def flush(self) -> np.ndarray:
        """End of stream: the remaining (k, 68, 2) frames."""
        self._check_open()
        self._closed = True
        lm = self._flush(**self._state)["landmarks"].numpy()
        self.frames_emitted += len(lm)
        return lm
