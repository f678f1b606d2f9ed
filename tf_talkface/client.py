"""Animate speech through a TF Serving server: ``python -m tf_talkface.client``.

The server runs a model exported by :mod:`tf_talkface.export` (``scripts/serve_tfserving.sh``,
``docs/serving.md``); this client decodes the audio locally (any file ffmpeg reads, resampled to
the model's rate), sends the waveforms, and writes exactly what ``python -m tf_talkface.generate``
writes, through the same :func:`tf_talkface.generate.write_outputs`: ``NAME.npy`` (float32
(frames, 68, 2) landmarks at 25 fps) and ``NAME.mp4`` (the face with the sound).

Example::

    python -m tf_talkface.client --url http://localhost:8501 --model lstm_grid_s1 \\
        --card saved_models/lstm_grid_s1/1/model_card.json -o out/ --batch 4 speech/

Transport
---------
REST (default, ``--url``): ``POST {url}/v1/models/{model}[/versions/{v}]:predict`` with TF
Serving's **columnar** JSON body (:func:`build_rest_request`)::

    {"signature_name": "serving_default",
     "inputs": {"waveform": [[s0, s1, ...], ...], "lengths": [n0, n1, ...]}}

and the columnar answer ``{"outputs": {"landmarks": ..., "frames": ...}}``
(:func:`parse_rest_response`). Before the first request the client reads
``GET .../metadata`` and checks that the signature takes ``waveform`` (+ ``lengths``).
JSON is bulky: each float32 sample is written as its exact decimal value (``.tolist()``,
~22 characters with the separator, measured on real speech), so a request is ~11x the size of
the 16-bit PCM (~5.6x the float32 samples): one second of 44.1 kHz speech is ~1 MB of JSON,
of 8 kHz ~0.18 MB.

gRPC (``--grpc HOST:8500``, needs ``pip install tensorflow-serving-api``): the same predict call
with the tensors sent in binary (:func:`grpc_predict`); ``--url`` is then optional and only used
for the metadata check.

``--batch N`` puts N files into one request (rows right-padded with zeros, ``lengths`` giving the
valid samples; each row's landmarks equal those of a request with that file alone). If a batch
is refused by the server (HTTP 400, e.g. one file too short), its files are retried one by one so
the others are still done.

The sample rate of the model is not in the server's metadata: give the exported folder's
``model_card.json`` (``--card``; field ``sample_rate``) or ``--sample-rate`` (44100 for the 2018
LSTM, 8000 for the 2020 CNNs). A wrong rate is caught from the frame count the server returns
(25 fps of the audio's duration).

Exit codes: 0 all done, 1 any input failed (the others are still done) or the server could not
be used, 2 bad arguments.
"""
from __future__ import annotations

import os

from tf_talkface.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # CLI: TensorFlow's C++ start-up chatter stays out of stderr (console.py)

import argparse
import json
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from tf_talkface.config import FPS

__all__ = ["ServingError", "DEFAULT_SIGNATURE", "DEFAULT_TIMEOUT", "build_rest_request",
           "parse_rest_response", "predict_url", "metadata_url", "rest_predict", "rest_metadata",
           "check_signature", "grpc_predict", "read_card_sample_rate", "run_client", "main"]

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_TIMEOUT = 300.0
"""Seconds to wait for one predict answer (a batch of long files on a CPU server takes a while)."""

_TF_DTYPES = {"DT_FLOAT": "float32", "DT_INT32": "int32"}


class ServingError(RuntimeError):
    """The server could not be reached, refused a request, or answered something unexpected.

    The message names the URL (or gRPC target) and carries the server's own error text.

    Attributes:
        status: the HTTP status code (``None``: no HTTP answer, e.g. connection refused, or gRPC).
        url: the URL or gRPC target of the request.
    """

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url


# ----------------------------------------------------------------------------- request/response

def _as_rows(waveforms: list[np.ndarray]) -> list[np.ndarray]:
    if len(waveforms) == 0:
        raise ValueError("no waveforms to send")
    rows = []
    for i, w in enumerate(waveforms):
        a = np.asarray(w)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"waveform {i}: expected a non-empty mono waveform (samples,), got "
                             f"shape {a.shape}")
        a = a.astype(np.float32, copy=False)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"waveform {i}: contains NaN or Inf")
        rows.append(a)
    return rows


def _pad(waveforms: list[np.ndarray], with_lengths: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad float32 rows with zeros: (batch, max samples) float32 and (batch,) int32."""
    rows = _as_rows(waveforms)
    lengths = np.array([len(r) for r in rows], np.int32)
    if not with_lengths and len(set(lengths.tolist())) > 1:
        raise ValueError("a signature without 'lengths' (full_length) needs waveforms of equal "
                         f"length in one request; got lengths {lengths.tolist()}")
    batch = np.zeros((len(rows), int(lengths.max())), np.float32)
    for i, r in enumerate(rows):
        batch[i, :len(r)] = r
    return batch, lengths


def build_rest_request(waveforms: list[np.ndarray], signature: str = DEFAULT_SIGNATURE,
                       with_lengths: bool = True) -> dict:
    """TF Serving REST predict body, columnar ("inputs") format, for a batch of waveforms.

    Args:
        waveforms: mono waveforms, each float (samples_i,) in [-1, 1] at the model's sample rate
            (44100 Hz for the 2018 LSTM, 8000 Hz for the 2020 CNNs); cast to float32.
        signature: the SavedModel signature to call (``serving_default``: ``waveform`` +
            ``lengths``; ``full_length``: ``waveform`` only).
        with_lengths: send ``lengths`` (False for a signature without it; then every waveform
            must have the same length).

    Returns:
        ``{"signature_name": signature, "inputs": {"waveform": [[...], ...], "lengths": [...]}}``
        (JSON-ready): ``waveform`` is (batch, max samples) float32 as nested lists (rows
        right-padded with 0.0; ``.tolist()`` writes each float32's exact value, so the server's
        float32 parse gives the same bits back), ``lengths`` is (batch,) int valid samples per row.
        Serialised, this is ~10x the size of the 16-bit PCM (gRPC sends binary tensors).

    Raises:
        ValueError: no waveforms, a waveform that is not 1-D or is empty, NaN/Inf samples, or
            unequal lengths with ``with_lengths=False``.
    """
    batch, lengths = _pad(waveforms, with_lengths)
    inputs: dict[str, Any] = {"waveform": batch.tolist()}
    if with_lengths:
        inputs["lengths"] = lengths.tolist()
    return {"signature_name": signature, "inputs": inputs}


def parse_rest_response(body: dict, n: int) -> list[np.ndarray]:
    """Landmarks per row from a TF Serving REST predict answer.

    Args:
        body: the decoded JSON: columnar ``{"outputs": {"landmarks": (n, T, 68, D) nested lists,
            "frames": (n,) ints, ...}}`` (other outputs such as the CNNs' ``pca_coefficients`` are
            ignored); the row format ``{"predictions": [{"landmarks": ..., "frames": ...}, ...]}``
            is accepted too.
        n: the number of rows sent.

    Returns:
        ``n`` float32 arrays (frames_i, 68, D): row ``i`` trimmed to its ``frames[i]`` valid
        frames (25 fps); without a ``frames`` output every row keeps all ``T`` frames.

    Raises:
        ServingError: the body holds TF Serving's ``{"error": ...}`` (its text is the message),
            or lacks ``landmarks``, or has the wrong number of rows or shape.
    """
    if not isinstance(body, dict):
        raise ServingError(f"unexpected predict answer (not a JSON object): {str(body)[:200]}")
    if "error" in body:
        raise ServingError(str(body["error"]))
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, dict):
            raise ServingError("the answer's 'outputs' is a single unnamed tensor; expected named "
                               "outputs 'landmarks' and 'frames' (is this a tf_talkface model?)")
    elif "predictions" in body and isinstance(body["predictions"], list):
        rows = body["predictions"]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ServingError("the answer's 'predictions' are not named outputs per row")
        outputs = {k: [r.get(k) for r in rows] for k in rows[0]}
    else:
        raise ServingError(f"unexpected predict answer: keys {sorted(body)} (expected 'outputs')")
    if "landmarks" not in outputs:
        raise ServingError(f"the answer has no 'landmarks' output (outputs: {sorted(outputs)})")
    try:
        lm = np.asarray(outputs["landmarks"], np.float32)
        frames = (np.asarray(outputs["frames"], np.int64).reshape(-1) if "frames" in outputs
                  else np.full(len(lm), lm.shape[1] if lm.ndim > 1 else 0))
    except (ValueError, TypeError) as e:
        raise ServingError(f"malformed 'landmarks'/'frames' in the answer ({e})") from None
    if lm.ndim != 4 or lm.shape[0] != n or lm.shape[2] != 68 or len(frames) != n:
        raise ServingError(f"expected landmarks ({n}, frames, 68, D) and frames ({n},), got "
                           f"{lm.shape} and {frames.shape}")
    if np.any(frames < 0) or np.any(frames > lm.shape[1]):
        raise ServingError(f"'frames' {frames.tolist()} out of range for {lm.shape[1]} frames")
    rows = [lm[i, :int(frames[i])] for i in range(n)]
    bad = [i for i, r in enumerate(rows) if not np.all(np.isfinite(r))]
    if bad:
        raise ServingError(f"the server returned non-finite landmarks (NaN/Inf) for row(s) {bad}: "
                           "the served model is broken")
    return rows


# ----------------------------------------------------------------------------- REST transport

def _base(url: str) -> str:
    return url.rstrip("/")


def _model_path(url: str, model: str, version: int | None) -> str:
    path = f"{_base(url)}/v1/models/{urllib.parse.quote(model, safe='')}"
    return path + (f"/versions/{int(version)}" if version is not None else "")


def predict_url(url: str, model: str, version: int | None = None) -> str:
    """``{url}/v1/models/{model}[/versions/{version}]:predict`` (TF Serving's REST predict URL)."""
    return _model_path(url, model, version) + ":predict"


def metadata_url(url: str, model: str, version: int | None = None) -> str:
    """``{url}/v1/models/{model}[/versions/{version}]/metadata``."""
    return _model_path(url, model, version) + "/metadata"


def _http_json(url: str, body: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """GET (``body is None``) or POST JSON; the decoded JSON answer.

    Raises:
        ServingError: no connection, timeout, an HTTP error (with the server's ``error`` text),
            or an answer that is not JSON.
    """
    data = None if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", errors="replace")
        try:
            msg = json.loads(text).get("error", text)
        except (json.JSONDecodeError, AttributeError):
            msg = text.strip()[:500]
        raise ServingError(f"{url}: HTTP {e.code} {e.reason}: {msg or '(no message)'}",
                           status=e.code, url=url) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise ServingError(f"{url}: no answer within {timeout:g} s", url=url) from None
        raise ServingError(f"cannot reach TF Serving at {url}: {reason} (is the server running "
                           "and is the --url host:port its REST port? see scripts/serve_tfserving.sh)",
                           url=url) from None
    except (TimeoutError, socket.timeout):
        raise ServingError(f"{url}: no answer within {timeout:g} s", url=url) from None
    except (ConnectionError, OSError) as e:
        raise ServingError(f"connection to {url} failed: {e}", url=url) from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ServingError(f"{url}: answer is not JSON: {raw[:200]!r}", url=url) from None


def rest_predict(url: str, model: str, waveforms: list[np.ndarray], version: int | None = None,
                 signature: str = DEFAULT_SIGNATURE, timeout: float = DEFAULT_TIMEOUT,
                 with_lengths: bool = True) -> list[np.ndarray]:
    """Landmarks of a batch of waveforms from TF Serving's REST API (one POST).

    Args:
        url: the server's REST base URL, e.g. ``http://localhost:8501``.
        model: the model name on the server (its folder name, e.g. ``lstm_grid_s1``).
        waveforms: float mono (samples_i,) arrays at the model's sample rate.
        version: a specific version (default: the server's latest).
        signature, with_lengths: see :func:`build_rest_request`.
        timeout: seconds to wait for the answer.

    Returns:
        one float32 (frames_i, 68, 2) array per waveform, 25 fps, in the model's coordinates.

    Raises:
        ServingError: connection refused/timeout (the message names the URL), an HTTP error
            (400 bad input, 404 unknown model/version, ...: the message carries TF Serving's
            error text; ``.status`` the HTTP code), or a malformed answer.
        ValueError: bad waveforms (see :func:`build_rest_request`).
    """
    body = build_rest_request(waveforms, signature, with_lengths)
    target = predict_url(url, model, version)
    answer = _http_json(target, body, timeout)
    try:
        return parse_rest_response(answer, len(waveforms))
    except ServingError as e:
        raise ServingError(f"{target}: {e}", url=target) from None


def rest_metadata(url: str, model: str, version: int | None = None,
                  timeout: float = 30.0) -> dict:
    """TF Serving's model metadata (``GET .../metadata``), the decoded JSON.

    Layout (TF Serving's JSON of ``GetModelMetadataResponse``)::

        {"model_spec": {"name": ..., "version": "1", "signature_name": ""},
         "metadata": {"signature_def": {"signature_def": {
             "serving_default": {"inputs": {"waveform": {"dtype": "DT_FLOAT",
                 "tensor_shape": {"dim": [{"size": "-1"}, {"size": "-1"}]}, ...}, ...},
                                 "outputs": {...}, "method_name": "tensorflow/serving/predict"},
             ...}}}}

    Raises:
        ServingError: as :func:`rest_predict` (404: unknown model or version).
    """
    return _http_json(metadata_url(url, model, version), None, timeout)


def check_signature(metadata: dict, signature: str = DEFAULT_SIGNATURE) -> bool:
    """Check that ``signature`` takes raw waveforms; whether it takes ``lengths``.

    Args:
        metadata: from :func:`rest_metadata`.
        signature: the signature the client will call.

    Returns:
        True for ``waveform`` (float32 (batch, samples)) + ``lengths`` (int32 (batch,))
        (``serving_default``), False for ``waveform`` only (``full_length``).

    Raises:
        ServingError: the metadata has no such signature (the message lists those it has), the
            signature takes other inputs (e.g. ``features``) or other dtypes, or has no
            ``landmarks`` output.
    """
    try:
        sigs = metadata["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        raise ServingError("the server's metadata has no signature_def map "
                           f"(keys: {sorted(metadata) if isinstance(metadata, dict) else '?'})") from None
    name = (metadata.get("model_spec") or {}).get("name", "the model")
    if signature not in sigs:
        have = sorted(k for k in sigs if not k.startswith("__"))
        raise ServingError(f"{name} has no signature {signature!r}; it has {', '.join(have)}")
    sig = sigs[signature]
    inputs, outputs = sig.get("inputs") or {}, sig.get("outputs") or {}
    if set(inputs) not in ({"waveform", "lengths"}, {"waveform"}):
        raise ServingError(
            f"signature {signature!r} of {name} takes inputs {{{', '.join(sorted(inputs))}}}; this "
            "client sends raw waveforms and needs 'waveform' and 'lengths' (serving_default of a "
            "tf_talkface export) or 'waveform' only (full_length)")
    want = {"waveform": "DT_FLOAT", "lengths": "DT_INT32"}
    for k, info in inputs.items():
        if info.get("dtype") != want[k]:
            raise ServingError(f"signature {signature!r} of {name}: input {k!r} is "
                               f"{info.get('dtype')}, expected {want[k]}")
    if "landmarks" not in outputs:
        raise ServingError(f"signature {signature!r} of {name} has no 'landmarks' output "
                           f"(outputs: {', '.join(sorted(outputs))})")
    return "lengths" in inputs


# ----------------------------------------------------------------------------- gRPC transport

def grpc_predict(target: str, model: str, waveforms: list[np.ndarray], version: int | None = None,
                 signature: str = DEFAULT_SIGNATURE, timeout: float = DEFAULT_TIMEOUT,
                 with_lengths: bool = True) -> list[np.ndarray]:
    """Landmarks of a batch of waveforms over TF Serving's gRPC ``PredictionService.Predict``.

    Same inputs and result as :func:`rest_predict`, but the tensors travel as binary
    ``TensorProto`` (4 bytes per sample instead of ~20 characters of JSON). ``target`` is the
    gRPC ``HOST:PORT`` (TF Serving's ``--port``, 8500 by default). The message size limits are
    lifted on the client side (TF Serving's server accepts up to 2 GB).

    Raises:
        ServingError: ``tensorflow-serving-api`` is not installed (install it with
            ``pip install tensorflow-serving-api``), or the call failed (the message names the
            target and carries the gRPC status code and the server's text).
    """
    try:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as e:
        raise ServingError(f"gRPC needs the TF Serving API package ({e}); install it with "
                           "`pip install tensorflow-serving-api` (same major.minor as TensorFlow), "
                           "or use the REST API (--url)", url=target) from None
    import tensorflow as tf

    batch, lengths = _pad(waveforms, with_lengths)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = int(version)
    req.inputs["waveform"].CopyFrom(tf.make_tensor_proto(batch))
    if with_lengths:
        req.inputs["lengths"].CopyFrom(tf.make_tensor_proto(lengths))
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            resp = stub.Predict(req, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code().name if hasattr(e, "code") and e.code() else "UNKNOWN"
            details = e.details() if hasattr(e, "details") else str(e)
            raise ServingError(f"gRPC {target} ({model}): {code}: {details}", url=target) from None
    outputs = {k: tf.make_ndarray(v).tolist() for k, v in resp.outputs.items()
               if k in ("landmarks", "frames")}
    try:
        return parse_rest_response({"outputs": outputs}, len(waveforms))
    except ServingError as e:
        raise ServingError(f"gRPC {target}: {e}", url=target) from None


# ----------------------------------------------------------------------------- the CLI

class _ArgError(ValueError):
    """A bad command line (exit code 2)."""


def read_card_sample_rate(card: str | os.PathLike) -> tuple[int, dict]:
    """The input sample rate (Hz) from an exported model's ``model_card.json``, and the card.

    Args:
        card: the card file, or the exported version folder holding it.

    Raises:
        ValueError: missing/unreadable file, or no positive integer ``sample_rate`` in it.
    """
    p = Path(card)
    if p.is_dir():
        p = p / "model_card.json"
    if not p.is_file():
        raise ValueError(f"{p}: model card not found (give the exported folder's model_card.json)")
    try:
        data = json.loads(p.read_text())
        sr = data["sample_rate"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{p}: not a readable model card with a 'sample_rate' ({type(e).__name__}: "
                         f"{e})") from None
    if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
        raise ValueError(f"{p}: 'sample_rate' must be a positive integer (Hz), got {sr!r}")
    return sr, data


def _frames_plausible(frames: int, samples: int, sample_rate: int) -> bool:
    """Whether ``frames`` (25 fps) fits ``samples`` at ``sample_rate`` (both models' rules are
    within one frame of ``samples / sample_rate * 25``)."""
    return abs(frames - samples * FPS / sample_rate) <= 2


def run_client(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, model: str,
               sample_rate: int, url: str | None = None, grpc_target: str | None = None,
               version: int | None = None, signature: str = DEFAULT_SIGNATURE,
               video: str = "painted", batch: int = 1, size: int = 512, min_samples: int = 1,
               overwrite: bool = False, timeout: float = DEFAULT_TIMEOUT, progress: bool = True):
    """Animate files/folders through TF Serving (the CLI's library function).

    Args:
        inputs: speech/video files or folders (recursive, as :func:`tf_talkface.generate.find_inputs`;
            outputs mirror each folder's tree under ``out_dir``).
        out_dir: output folder: ``NAME.npy`` and, unless ``video == "none"``, ``NAME.mp4``.
        model: the model name on the server.
        sample_rate: the model's input rate in Hz (the card's ``sample_rate``).
        url: REST base URL; used for predict unless ``grpc_target`` is given, and always for the
            metadata check when given.
        grpc_target: ``HOST:PORT`` of the gRPC API (needs tensorflow-serving-api).
        version, signature: which model version (default latest) and signature to call.
        video: ``painted``, ``lines`` or ``none``.
        batch: files per request.
        min_samples: the model's shortest input (card ``min_samples``); shorter files fail
            locally instead of failing their whole batch on the server.
        overwrite: redo inputs whose outputs exist (default: skip them, so a run resumes).

    Returns:
        a :class:`tf_talkface.generate.Report` (written / skipped / failed per input).

    Raises:
        ServingError: the server cannot be used at all (unreachable, unknown model, signature
            without ``waveform``), found by the metadata check before any file is sent.
    """
    from tf_talkface.audio.io import AudioError, load_audio
    from tf_talkface.files import output_path
    from tf_talkface.generate import (VIDEO_AUDIO_RATE, GenerateError, Report, find_inputs,
                                      write_outputs)

    out = Path(out_dir)
    report = Report()
    with_lengths = signature != "full_length"
    if url:
        with_lengths = check_signature(rest_metadata(url, model, version, min(timeout, 60.0)),
                                       signature)
    if not with_lengths:
        batch = 1  # rows of a signature without lengths must have equal lengths

    items: list[tuple[Path, Path]] = []
    owners: dict[Path, Path] = {}
    for src in inputs:
        try:
            found = find_inputs(src)
        except GenerateError as e:
            report.failed[Path(src)] = str(e)
            continue
        for path, stem in found:
            if stem in owners:
                report.failed[path] = (f"{path}: output name {stem} is already used by "
                                       f"{owners[stem]}; give them separately with different -o")
                continue
            owners[stem] = path
            items.append((path, stem))

    def done(stem: Path) -> bool:
        want = [".npy"] + ([".mp4"] if video != "none" else [])
        return all(output_path(out / stem, s).is_file() for s in want)

    todo = []
    for path, stem in items:
        if not overwrite and done(stem):
            report.skipped.append(path)
        else:
            todo.append((path, stem))

    def predict(ws: list[np.ndarray]) -> list[np.ndarray]:
        if grpc_target:
            return grpc_predict(grpc_target, model, ws, version, signature, timeout, with_lengths)
        return rest_predict(url, model, ws, version, signature, timeout, with_lengths)

    def finish(path: Path, stem: Path, y: np.ndarray, lm: np.ndarray) -> None:
        if not np.all(np.isfinite(lm)):  # gRPC answers too: never write a NaN face
            raise GenerateError(f"{path}: the server returned non-finite landmarks (NaN/Inf); "
                                "nothing written")
        if not _frames_plausible(len(lm), len(y), sample_rate):
            raise GenerateError(
                f"{path}: the server returned {len(lm)} frames for {len(y) / sample_rate:.2f} s of "
                f"audio (expected ~{len(y) * FPS / sample_rate:.0f} at {FPS} fps): the sample rate "
                f"{sample_rate} Hz is not the served model's (check --card/--sample-rate)")
        audio = None
        if video != "none":
            audio = y if sample_rate == VIDEO_AUDIO_RATE else load_audio(path, VIDEO_AUDIO_RATE)
        report.written[path] = write_outputs(lm, out, stem, audio, VIDEO_AUDIO_RATE, video=video,
                                             npy=True, size=size)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="client", unit="file", disable=not progress or len(todo) < 2)
    for start in range(0, len(todo), batch):
        group = []
        for path, stem in todo[start:start + batch]:
            try:
                y = load_audio(path, sample_rate)
            except AudioError as e:
                report.failed[path] = str(e)
                bar.update(1)
                continue
            if len(y) < min_samples:
                report.failed[path] = (f"{path}: audio too short ({len(y)} samples at {sample_rate}"
                                       f" Hz; the model needs at least {min_samples})")
                bar.update(1)
                continue
            group.append((path, stem, y))
        if not group:
            continue
        try:
            results = predict([y for _, _, y in group])
        except ServingError as e:
            if len(group) > 1 and e.status == 400:  # one bad row: retry each on its own
                results = []
                for path, stem, y in group:
                    try:
                        results.append(predict([y])[0])
                    except ServingError as e1:
                        results.append(e1)
            else:
                results = [e] * len(group)
        except ValueError as e:  # a waveform the request cannot carry
            results = [ServingError(str(e))] * len(group)
        for (path, stem, y), res in zip(group, results):
            try:
                if isinstance(res, ServingError):
                    raise GenerateError(f"{path}: {res}")
                finish(path, stem, y, res)
            except (GenerateError, AudioError, OSError, RuntimeError) as e:  # e.g. disk, ffmpeg
                report.failed[path] = str(e) if str(path) in str(e) else f"{path}: {e}"
            bar.update(1)
    bar.close()
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tf_talkface.client",
        description="Animate speech with a tf_talkface model served by TF Serving: NAME.npy "
                    "landmarks (25 fps) + NAME.mp4 with the sound, as tf_talkface.generate writes.",
        epilog="Exit codes: 0 ok, 1 an input failed or the server could not be used, 2 bad "
               "arguments. REST JSON is ~10x the size of the 16-bit audio; --grpc sends binary.")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR",
                   help="speech/video files or folders (recursive)")
    p.add_argument("--url", help="TF Serving REST base URL, e.g. http://localhost:8501")
    p.add_argument("--grpc", metavar="HOST:PORT",
                   help="predict over gRPC (e.g. localhost:8500; needs tensorflow-serving-api); "
                        "--url, if given, is still used for the metadata check")
    p.add_argument("--model", required=True, help="model name on the server (its folder name)")
    p.add_argument("--version", type=int, help="model version (default: the server's latest)")
    p.add_argument("--signature", default=DEFAULT_SIGNATURE,
                   help="signature to call: serving_default (waveform + lengths, default) or "
                        "full_length (waveform only, one file per request)")
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--sample-rate", type=int, metavar="HZ",
                      help="the model's input sample rate (44100 lstm, 8000 cnn)")
    rate.add_argument("--card", help="the exported model's model_card.json (or its folder): "
                                     "sample rate and minimum length")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--video", choices=("painted", "lines", "none"), default="painted",
                   help="video style (default painted); none writes only NAME.npy")
    p.add_argument("--batch", type=int, default=1, help="files per request (default 1)")
    p.add_argument("--size", type=int, default=512, help="video width = height in pixels (512)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds to wait for one answer ({DEFAULT_TIMEOUT:g})")
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _check_args(args) -> tuple[int, int]:
    """(sample rate, min samples) from a parsed command line; :class:`_ArgError` if bad."""
    if not args.url and not args.grpc:
        raise _ArgError("give the server: --url http://HOST:8501 (REST) and/or --grpc HOST:8500")
    if args.url:
        u = urllib.parse.urlparse(args.url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise _ArgError(f"--url {args.url!r}: expected http://HOST:PORT")
    if args.batch < 1:
        raise _ArgError("--batch must be >= 1")
    if args.version is not None and args.version < 1:
        raise _ArgError("--version must be >= 1")
    if args.size < 64 or args.size % 16:
        raise _ArgError("--size must be a multiple of 16, at least 64")
    if args.timeout <= 0:
        raise _ArgError("--timeout must be > 0")
    if args.card:
        try:
            sr, card = read_card_sample_rate(args.card)
        except ValueError as e:
            raise _ArgError(str(e)) from None
        return sr, int(card.get("min_samples", 1) or 1)
    if args.sample_rate <= 0:
        raise _ArgError("--sample-rate must be a positive number of Hz")
    return args.sample_rate, 1


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code (argparse errors and ``--help`` are returned, not raised)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: 2 for bad arguments, 0 for --help
        return e.code if isinstance(e.code, int) else 2
    try:
        sample_rate, min_samples = _check_args(args)
    except _ArgError as e:
        print(f"client: error: {e}", file=sys.stderr)
        return 2
    try:
        report = run_client(args.inputs, args.out, args.model, sample_rate, url=args.url,
                            grpc_target=args.grpc, version=args.version, signature=args.signature,
                            video=args.video, batch=args.batch, size=args.size,
                            min_samples=min_samples, overwrite=args.overwrite,
                            timeout=args.timeout, progress=not args.quiet)
    except ServingError as e:
        print(f"client: error: {e}", file=sys.stderr)
        return 1
    for src, files in report.written.items():
        print(f"{src} -> " + ", ".join(str(f) for f in files.values()))
    if report.skipped:
        print(f"{len(report.skipped)} input(s) skipped: outputs exist (use --overwrite to redo)")
    for msg in report.failed.values():
        print(f"client: failed: {msg}", file=sys.stderr)
    if report.failed:
        total = len(report.failed) + len(report.written) + len(report.skipped)
        print(f"{len(report.failed)} of {total} input(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
