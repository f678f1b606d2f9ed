"""The streaming interface, below every streamer (no SavedModel, checkpoint or Keras knowledge).

:class:`Streamer` is what both implementations share: the Python streamers of
:mod:`tf_talkface.stream` (``LSTMStreamer``, ``CNNStreamer``) and the SavedModel session of
:mod:`tf_talkface.stream_graph` (``SignatureStreamer``). :func:`stream_latency_ms` is the one
latency formula of the streaming algorithm, and :func:`stream_in_chunks` drives any streamer
over a whole waveform in big chunks (offline generation of long audio with bounded memory).

To get a streamer for a model, use :func:`tf_talkface.stream.open_streamer` (any model form),
:func:`tf_talkface.stream.streamer_for` (a trained model, Python streamer) or
``tf_talkface.saved_model.LoadedModel.streamer()`` (an exported model, its signatures).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Streamer", "stream_latency_ms", "streaming_peak", "stream_in_chunks"]


def stream_latency_ms(kind: str, delay: int = 0, post_filter_frames: int = 0
                      ) -> tuple[float, float]:
    """Algorithmic latency of streaming, in ms: ``(latency, max_latency)``.

    ``latency``: how long after the instant a frame depicts (its centre, ``t * 40`` ms) the
    last audio sample it depends on arrives (compute time excluded). ``max_latency``: the worst
    case from the arrival of any sample to the first frame whose window contains it.

    * ``"lstm"``: ``(delay * hop + n_fft - n_fft // 2) / sr`` = delay x 40 + 20 ms, and
      ``(delay * hop + n_fft) / sr`` = delay x 40 + 40 ms (hop = n_fft = 1764 at 44.1 kHz).
    * ``"cnn"``, ``"cnn_tc"``: ``(2237 - 1120) / 8000`` s = 139.625 ms (the trunk reads 2237
      of the 2240 window samples, 1120 of them before the centre), and 2237 / 8000 s = 279.625.
    * a temporal post-filter over +-K frames (issue 11) adds K x 40 ms to both.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "lstm":
        from tf_talkface.config import LogMelConfig

        cfg = LogMelConfig()
        n_fft, hop, sr = cfg.n_fft, cfg.hop_length, cfg.sample_rate
        extra = 1000.0 * post_filter_frames * hop / sr
        return (1000.0 * (delay * hop + n_fft - n_fft // 2) / sr + extra,
                1000.0 * (delay * hop + n_fft) / sr + extra)
    if kind in ("cnn", "cnn_tc"):
        from tf_talkface.models import cnn as C  # lazy: imports TensorFlow

        extra = 1000.0 * post_filter_frames * C.HOP / C.SAMPLE_RATE
        return (1000.0 * (C.MIN_PADDED_LENGTH - C.PAD) / C.SAMPLE_RATE + extra,
                1000.0 * C.MIN_PADDED_LENGTH / C.SAMPLE_RATE + extra)
    raise ValueError(f"unknown model kind {kind!r}")


def _as_chunk(chunk: Any) -> np.ndarray:
    x = np.asarray(chunk, np.float32)
    if x.ndim != 1:
        x = x.reshape(-1)
    return x


class Streamer:
    """Base class of every streamer: ``push(chunk) -> (k, 68, 2)``, ``flush() -> (k, 68, 2)``,
    ``reset()``.

    ``push`` takes float32 samples (n,) at :attr:`sample_rate` Hz (any n >= 0) and returns the
    k >= 0 landmark frames (25 fps, float32 (k, 68, 2)) newly determined; ``flush`` ends the
    stream and returns the remaining frames (a flushed streamer refuses ``push`` until
    ``reset``). Everything returned, concatenated, equals offline generation of the whole
    stream. ``n_samples`` counts the samples pushed, ``frames_emitted`` the frames returned.

    Attributes:
        sample_rate: input rate in Hz (44100 for the LSTM, 8000 for the CNNs).
        model: what the streamer runs (a trained model or a loaded SavedModel).
        kind: ``"lstm"``, ``"cnn"`` or ``"cnn_tc"``.
        delay: frame delay (LSTM; 0 for the CNNs).
        post_filter_frames: K of the model's temporal post-filter (frames emitted K x 40 ms later).
    """

    sample_rate: int
    model: Any
    kind: str   # "lstm", "cnn" or "cnn_tc"
    delay: int  # frame delay (LSTM; 0 for the CNNs)
    post_filter_frames: int = 0  # K of the model's temporal post-filter (0 = none)

    def push(self, chunk: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def flush(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency in ms (:func:`stream_latency_ms`)."""
        return stream_latency_ms(self.kind, self.delay, self.post_filter_frames)[0]

    @property
    def max_latency_ms(self) -> float:
        """Worst case in ms from any sample to its first frame (:func:`stream_latency_ms`)."""
        return stream_latency_ms(self.kind, self.delay, self.post_filter_frames)[1]

    def _accept(self, chunk: Any) -> np.ndarray | None:
        """Common start of ``push``: check the stream is open, convert the chunk, count its
        samples; ``None`` for an empty chunk."""
        self._check_open()
        x = _as_chunk(chunk)
        if len(x) == 0:
            return None
        self.n_samples += len(x)
        return x

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("stream already flushed; call reset() to start a new one")


def streaming_peak(kind: str, waveform: Any, peak: float | None) -> float:
    """The fixed peak normalisation to stream a whole known waveform with.

    Args:
        kind: ``"lstm"`` (not level-normalised: any ``peak``, ``None`` gives 1.0), ``"cnn"`` or
            ``"cnn_tc"``.
        waveform: float (samples,) (only read when ``peak`` is ``None`` for a CNN).
        peak: a fixed peak (> 0), or ``None`` for the clip's own max |x| (1.0 for silence), which
            makes streaming equal the offline default (``pad_and_scale(peak=None)``).

    Returns:
        the peak (float > 0, unless a non-positive fixed ``peak`` was given: the streamer
        refuses that).
    """
    if peak is not None:
        return peak
    if kind != "lstm":
        y = np.asarray(waveform)
        p = max(float(y.max()), -float(y.min())) if len(y) else 0.0  # no |y| copy of the clip
        return p if p > 0 else 1.0
    return 1.0


def stream_in_chunks(streamer: Streamer, waveform: Any, chunk_seconds: float = 30.0) -> np.ndarray:
    """Push a whole waveform through a fresh ``streamer`` in chunks, then flush it.

    Memory is one chunk of audio plus its frames plus the output (a numpy memmap works as the
    waveform), whatever the length of the audio.

    Args:
        streamer: a new (or ``reset``) :class:`Streamer`.
        waveform: float mono (samples,) at ``streamer.sample_rate`` Hz.
        chunk_seconds: seconds of audio per ``push`` (> 0).

    Returns:
        float32 (frames, 68, 2): every frame the stream gave, equal to the one-go offline path.

    Raises:
        RuntimeError: the streamer was already flushed.
    """
    y = np.asarray(waveform)
    step = max(1, int(chunk_seconds * streamer.sample_rate))
    out = [streamer.push(y[i:i + step]) for i in range(0, len(y), step)]
    out.append(streamer.flush())
    return np.concatenate(out).astype(np.float32, copy=False)
