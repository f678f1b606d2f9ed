"""TF Serving client (tf_talkface.client) and scripts/serve_tfserving.sh.

No TF Serving binary or container exists here, so:

- the request the client builds is fed to the exported SavedModel by TensorFlow's own
  ``saved_model_cli run`` (a separate process; it loads the graph into a TF1-style session with
  the signature's tensor names, as TF Serving's C++ SavedModel loader does), and compared with :meth:`LoadedModel.predict` on real speech;
- the client runs end to end over HTTP against :class:`FakeTFServing`, a test-only in-process
  REST server that follows TF Serving's REST API (documented at
  https://www.tensorflow.org/tfx/serving/api_rest, details from its source: see the class);
- the serving script runs with stub ``docker`` / ``tensorflow_model_server`` executables on PATH.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tf_talkface import client as C

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "serve_tfserving.sh"
ATOL = 1e-5



@pytest.fixture(scope="module")
def lstm_dir(tmp_path_factory, checkpoint) -> Path:
    """The LSTM checkpoint exported once for the module: .../lstm_grid_s1/1."""
    from tf_talkface.export import export

    src = checkpoint("lstm_d1_c3_b16")
    return export(src, tmp_path_factory.mktemp("served") / "lstm_grid_s1" / "1")


@pytest.fixture(scope="module")
def lstm(lstm_dir):
    from tf_talkface.saved_model import load_model

    return load_model(lstm_dir)


@pytest.fixture(scope="module")
def clips(data_dir, tmp_path_factory) -> dict[str, Path]:
    """Short cuts of real speech written as float WAV files (16 kHz, as the originals)."""
    from tf_talkface.audio.io import load_audio, write_wav

    d = tmp_path_factory.mktemp("clips")
    a = load_audio(data_dir / "speech" / "test1.flac", 16000)
    b = load_audio(data_dir / "speech" / "test2.flac", 16000)
    out = {"a": d / "a.wav", "b": d / "b.wav"}
    write_wav(out["a"], a[: int(16000 * 2.5)], 16000, subtype="FLOAT")
    write_wav(out["b"], b[16000: 16000 + int(16000 * 1.7)], 16000, subtype="FLOAT")
    return out


def _load(path: Path, sr: int) -> np.ndarray:
    from tf_talkface.audio.io import load_audio

    return load_audio(path, sr)


# ----------------------------------------------------------------------------- fake TF Serving

class FakeTFServing:
    """A test-only TF Serving REST server for exported SavedModels (127.0.0.1, a free port).

    Modelled on TF Serving's documented REST API (https://www.tensorflow.org/tfx/serving/api_rest)
    and, for details the page leaves open, its source (tensorflow/serving):

    - routes (``http_rest_api_util.cc``): ``POST /v1/models/NAME[/versions/N]:predict``,
      ``GET /v1/models/NAME[/versions/N]`` (status) and ``GET .../metadata``; model names are
      ``[^/:]+``; without a version the latest loaded version answers;
    - errors: body ``{"error": "<message>"}`` (documented), HTTP status from the canonical code as
      ``http_server.cc`` maps it (INVALID_ARGUMENT -> 400, NOT_FOUND -> 404, others 500); unknown
      model/version -> 404 ``Servable not found for request: Latest(NAME)`` /
      ``Specific(NAME, N)`` (``basic_manager.cc``); unknown signature -> 400
      ``Serving signature name: "X" not found in signature def`` (``http_rest_api_handler.cc``);
    - the columnar request (``json_tensor.cc``, ``FillTensorMapFromInputsMap``): ``"inputs"`` is an
      object with one entry per signature input (a missing one -> 400 ``Missing named input: X
      in 'inputs' object.``), converted with the dtype of the signature's TensorInfo: DT_FLOAT
      takes JSON numbers, DT_INT32 only JSON integers (``1.0`` is refused), nested lists must be
      dense (``Encountered list at unexpected size``); the signature is then called with exactly
      those tensors, and errors it raises (e.g. the model's length checks) come back as 400;
    - the columnar answer (``MakeJsonFromTensors``): ``{"outputs": {name: nested lists}}`` (a bare
      value when the signature has a single output); float32 values written so they parse back
      to the same float32;
    - metadata (``ToJsonString(GetModelMetadataResponse)``): ``{"model_spec": {"name",
      "signature_name", "version"}, "metadata": {"signature_def": {"signature_def": {KEY:
      SignatureDef}}}}`` with the SignatureDef protos of the SavedModel printed as protobuf JSON
      with the proto field names and default values (``"size": "-1"``, ``"dtype": "DT_FLOAT"``).

    Deliberately stricter than TF Serving: an *extra* key in ``"inputs"`` is refused with the
    400 ``input size does not match signature`` message of TF Serving's ``predict_util.cc``
    (real TF Serving's columnar parser looks up only the signature's inputs and ignores other
    keys). Not modelled: the row ("instances") format, labels, classify/regress, base64, batching.
    """

    def __init__(self):
        self.models: dict[str, dict[int, tuple]] = {}
        self.requests: list[dict] = []  # (path, signature, {input: shape}) of each predict
        self._lock = threading.Lock()
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add_model(self, name: str, version: int, path: Path) -> None:
        """Load ``path`` (a SavedModel version folder) as ``name``/``version``."""
        import tensorflow as tf
        from tensorflow.python.saved_model import loader_impl

        module = tf.saved_model.load(str(path))
        meta = loader_impl.parse_saved_model(str(path)).meta_graphs[0]
        with self._lock:
            self.models.setdefault(name, {})[int(version)] = (module, meta.signature_def)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the REST API

    class Error(Exception):
        def __init__(self, status: int, message: str):
            super().__init__(message)
            self.status = status

    def _servable(self, name: str, version: str | None):
        versions = self.models.get(name, {})
        if version is None:
            if not versions:
                raise self.Error(404, f"Servable not found for request: Latest({name})")
            v = max(versions)
        else:
            v = int(version)
            if v not in versions:
                raise self.Error(404, f"Servable not found for request: Specific({name}, {v})")
        return v, versions[v]

    @staticmethod
    def _to_array(value, name: str, dtype: str) -> np.ndarray:
        shape, v = [], value
        while isinstance(v, list):
            shape.append(len(v))
            if not v:
                break
            v = v[0]
        flat: list = []

        def fill(v, level):
            if not isinstance(v, list):
                if level != len(shape):
                    raise FakeTFServing.Error(400, f"JSON Value: {json.dumps(v)} found at incorrect "
                                                   f"level: {level + 1} in the JSON DOM. Expected "
                                                   f"at level: {len(shape)}")
                ok = (isinstance(v, (int, float)) and not isinstance(v, bool)) \
                    if dtype == "DT_FLOAT" else (isinstance(v, int) and not isinstance(v, bool))
                if not ok:
                    kind = {str: "String", bool: "True" if v else "False", float: "Number",
                            int: "Number", dict: "Object"}.get(type(v), "Null")
                    raise FakeTFServing.Error(400, f"JSON Value: {json.dumps(v)} Type: {kind} is "
                                                   f"not of expected type: {dtype[3:].lower()}")
                flat.append(v)
                return
            if level >= len(shape):
                raise FakeTFServing.Error(400, f"Encountered list at unexpected level: {level} "
                                               f"expected < {len(shape)}")
            if len(v) != shape[level]:
                raise FakeTFServing.Error(400, f"Encountered list at unexpected size: {len(v)} at "
                                               f"level: {level} expected size: {shape[level]}")
            for e in v:
                fill(e, level + 1)

        fill(value, 0)
        np_dtype = {"DT_FLOAT": np.float32, "DT_INT32": np.int32}[dtype]
        return np.asarray(flat, np_dtype).reshape(shape)

    def predict(self, name: str, version: str | None, raw: bytes):
        import tensorflow as tf

        v, (module, sigdefs) = self._servable(name, version)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise self.Error(400, f"JSON Parse error: {e}") from None
        if not isinstance(body, dict):
            raise self.Error(400, f"JSON Value: {raw[:80]!r} Is not object")
        sig = body.get("signature_name", "")
        if not isinstance(sig, str):
            raise self.Error(400, "'signature_name' key must be a string value.")
        sig = sig or "serving_default"
        if sig not in sigdefs or sig not in module.signatures:
            raise self.Error(400, f'Serving signature name: "{sig}" not found in signature def')
        infos = sigdefs[sig].inputs
        if "instances" in body and "inputs" in body:
            raise self.Error(400, "Not formatted correctly expecting only one of 'inputs' or "
                                  "'instances' keys to exist")
        if "instances" in body:
            raise self.Error(400, "the row format ('instances') is not modelled by this fake")
        if "inputs" not in body:
            raise self.Error(400, "Missing 'inputs' or 'instances' key")
        given = body["inputs"]
        if not isinstance(given, dict):
            if len(infos) > 1:
                raise self.Error(400, "inputs is a plain value/list, but expecting an object as "
                                      "multiple input tensors required as per tensorinfo_map")
            given = {next(iter(infos)): given}
        for k in sorted(infos):
            if k not in given:
                raise self.Error(400, f"Missing named input: {k} in 'inputs' object.")
        if set(given) != set(infos):  # stricter than TF Serving (see the class docstring)
            sent, want = sorted(given), sorted(infos)
            raise self.Error(400, f"input size does not match signature: {len(sent)}!={len(want)} "
                                  f"len({{{','.join(sent)}}}) != len({{{','.join(want)}}}). Sent "
                                  f"extra: {{{','.join(sorted(set(sent) - set(want)))}}}. Missing "
                                  "but required: {}.")
        from tensorflow.core.framework import types_pb2

        tensors = {k: tf.constant(self._to_array(given[k], k, types_pb2.DataType.Name(
            infos[k].dtype))) for k in infos}
        with self._lock:
            self.requests.append({"model": name, "version": v, "signature": sig,
                                  "shapes": {k: tuple(t.shape) for k, t in tensors.items()}})
        try:
            out = module.signatures[sig](**tensors)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            raise self.Error(400, getattr(e, "message", None) or str(e)) from None
        except tf.errors.OpError as e:
            raise self.Error(500, e.message) from None
        outputs = {k: t.numpy().tolist() for k, t in out.items()}
        return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}

    def metadata(self, name: str, version: str | None):
        from google.protobuf import json_format

        v, (module, sigdefs) = self._servable(name, version)
        try:
            kw = {"always_print_fields_with_no_presence": True}
            json_format.MessageToDict(sigdefs["serving_default"], **kw)
        except TypeError:  # protobuf < 5.26
            kw = {"including_default_value_fields": True}
        sd = {k: json_format.MessageToDict(s, preserving_proto_field_name=True, **kw)
              for k, s in sigdefs.items()}
        return {"model_spec": {"name": name, "signature_name": "", "version": str(v)},
                "metadata": {"signature_def": {"signature_def": sd}}}

    def status(self, name: str, version: str | None):
        v, _ = self._servable(name, version)
        vs = [v] if version is not None else sorted(self.models[name], reverse=True)
        return {"model_version_status": [
            {"version": str(x), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}} for x in vs]}

    def _handler(self):
        fake = self
        predict_re = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)",
                                re.I)
        status_re = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?", re.I)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest's output clean
                pass

            def _send(self, status: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, fn) -> None:
                try:
                    self._send(200, fn())
                except FakeTFServing.Error as e:
                    self._send(e.status, {"error": str(e)})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                m = predict_re.fullmatch(self.path)
                if not m:
                    return self._send(404, {"error": f"Malformed request: POST {self.path}"})
                if m.group(3).lower() != "predict":
                    return self._send(400, {"error": f"{m.group(3)} is not modelled by this fake"})
                self._answer(lambda: fake.predict(m.group(1), m.group(2), raw))

            def do_GET(self):
                m = status_re.fullmatch(self.path)
                if not m:
                    return self._send(404, {"error": f"Malformed request: GET {self.path}"})
                fn = fake.metadata if m.group(3) else fake.status
                self._answer(lambda: fn(m.group(1), m.group(2)))

        return Handler


@pytest.fixture(scope="module")
def server(lstm_dir):
    s = FakeTFServing()
    s.add_model("lstm_grid_s1", 1, lstm_dir)
    yield s
    s.close()


def _post(url: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- request / response

def test_build_and_parse_are_inverse_and_checked():
    a, b = np.linspace(-1, 1, 5, dtype=np.float32), np.float64([0.1, 0.2, 0.3])
    body = C.build_rest_request([a, b])
    assert body["signature_name"] == "serving_default"
    assert body["inputs"]["lengths"] == [5, 3]
    w = np.asarray(json.loads(json.dumps(body))["inputs"]["waveform"], np.float32)
    assert w.shape == (2, 5) and np.array_equal(w[0], a) and np.all(w[1, 3:] == 0)
    assert np.array_equal(w[1, :3], b.astype(np.float32))  # float32 bits survive the JSON
    assert "lengths" not in C.build_rest_request([a], "full_length", with_lengths=False)["inputs"]
    with pytest.raises(ValueError, match="equal length"):
        C.build_rest_request([a, b], with_lengths=False)
    for bad in ([], [np.zeros((2, 3))], [np.zeros(0)], [np.array([0.0, np.nan])]):
        with pytest.raises(ValueError):
            C.build_rest_request(bad)

    lm = np.random.default_rng(0).normal(size=(2, 4, 68, 2)).astype(np.float32)
    lm[1, 2:] = 0
    rows = C.parse_rest_response({"outputs": {"landmarks": lm.tolist(), "frames": [4, 2],
                                              "pca_coefficients": [[[0.0]] * 4] * 2}}, 2)
    assert [r.shape for r in rows] == [(4, 68, 2), (2, 68, 2)] and rows[0].dtype == np.float32
    assert np.array_equal(rows[0], lm[0]) and np.array_equal(rows[1], lm[1, :2])
    rows = C.parse_rest_response({"predictions": [{"landmarks": lm[0].tolist(), "frames": 4},
                                                  {"landmarks": lm[1].tolist(), "frames": 2}]}, 2)
    assert np.array_equal(rows[1], lm[1, :2])
    with pytest.raises(C.ServingError, match="lengths larger than the waveform"):
        C.parse_rest_response({"error": "assertion failed: lengths larger than the waveform"}, 1)
    for bad in ({"outputs": [1, 2]}, {"outputs": {"frames": [1]}}, {"result": 1},
                {"outputs": {"landmarks": lm.tolist(), "frames": [4, 9]}},
                {"outputs": {"landmarks": lm.tolist(), "frames": [4]}}):
        with pytest.raises(C.ServingError):
            C.parse_rest_response(bad, 2)
    assert C.predict_url("http://h:8501/", "m") == "http://h:8501/v1/models/m:predict"
    assert C.metadata_url("http://h:8501", "m", 3) == "http://h:8501/v1/models/m/versions/3/metadata"


# ----------------------------------------------------------------------------- the real signature

def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_saved_model_cli_shows_the_signature_the_client_needs(lstm_dir):
    r = _cli("show", "--dir", str(lstm_dir), "--all")
    assert r.returncode == 0, r.stderr[-2000:]
    block = r.stdout.split("signature_def['serving_default']:")[1].split("signature_def[")[0]
    ins, outs = block.split("contains the following output(s):")

    def tensors(text):
        return {m[0]: (m[1], m[2]) for m in re.findall(
            r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", text)}

    assert tensors(ins) == {"waveform": ("DT_FLOAT", "(-1, -1)"), "lengths": ("DT_INT32", "(-1)")}
    assert tensors(outs) == {"landmarks": ("DT_FLOAT", "(-1, -1, 68, 2)"),
                             "frames": ("DT_INT32", "(-1)")}
    assert "Method name is: tensorflow/serving/predict" in block


def test_request_runs_the_exported_signature_via_saved_model_cli(lstm_dir, lstm, clips, tmp_path):
    ya, yb = _load(clips["a"], 44100), _load(clips["b"], 44100)
    body = json.loads(json.dumps(C.build_rest_request([ya, yb])))  # exactly what goes on the wire
    # TF Serving parses each input with its signature dtype (DT_FLOAT / DT_INT32)
    inputs = {"waveform": np.asarray(body["inputs"]["waveform"], np.float32),
              "lengths": np.asarray(body["inputs"]["lengths"], np.int32)}
    assert set(body["inputs"]) == {"waveform", "lengths"}
    assert body["signature_name"] == "serving_default"
    np.savez(tmp_path / "req.npz", **inputs)
    out = tmp_path / "out"
    r = _cli("run", "--dir", str(lstm_dir), "--tag_set", "serve", "--signature_def",
             body["signature_name"], "--inputs",
             f"waveform={tmp_path / 'req.npz'}[waveform];lengths={tmp_path / 'req.npz'}[lengths]",
             "--outdir", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    lm, frames = np.load(out / "landmarks.npy"), np.load(out / "frames.npy")
    assert lm.dtype == np.float32 and frames.dtype == np.int32
    assert frames.tolist() == [1 + len(ya) // 1764, 1 + len(yb) // 1764]
    rows = C.parse_rest_response({"outputs": {"landmarks": lm.tolist(),
                                              "frames": frames.tolist()}}, 2)
    for y, row in zip((ya, yb), rows):
        ref = lstm.predict(y)
        assert row.shape == ref.shape == (1 + len(y) // 1764, 68, 2)
        np.testing.assert_allclose(row, ref, atol=ATOL)
    assert np.all(lm[1, frames[1]:] == 0)


# ----------------------------------------------------------------------------- the fake server

def test_fake_server_follows_tf_serving_rules(server):
    """A check of the test double itself (its messages are TF Serving's, not the product's):
    the client tests below rely on it refusing what TF Serving refuses."""
    url = C.predict_url(server.url, "lstm_grid_s1")
    w = [[0.0] * 2000]
    code, body = _post(url, {"inputs": {"waveform": w}})
    assert code == 400 and body["error"] == "Missing named input: lengths in 'inputs' object."
    code, body = _post(url, {"inputs": {"waveform": w, "lengths": [2000], "extra": [1]}})
    assert code == 400 and "input size does not match signature" in body["error"]
    code, body = _post(url, {"signature_name": "nope", "inputs": {"waveform": w, "lengths": [1]}})
    assert code == 400 and body["error"] == 'Serving signature name: "nope" not found in signature def'
    code, body = _post(url, {"inputs": {"waveform": w, "lengths": [2000.0]}})
    assert code == 400 and "is not of expected type: int32" in body["error"]
    code, body = _post(url, {"inputs": {"waveform": [[0.0] * 3, [0.0]], "lengths": [3, 1]}})
    assert code == 400 and "Encountered list at unexpected size" in body["error"]
    code, body = _post(url, {"inputs": {"waveform": w, "lengths": [9000]}})
    assert code == 400 and "lengths larger than the waveform" in body["error"]  # the model's check
    code, body = _post(C.predict_url(server.url, "nope"), {"inputs": {}})
    assert code == 404 and body["error"] == "Servable not found for request: Latest(nope)"
    code, body = _post(C.predict_url(server.url, "lstm_grid_s1", 7), {"inputs": {}})
    assert code == 404 and body["error"] == "Servable not found for request: Specific(lstm_grid_s1, 7)"
    code, body = _post(url, {"inputs": {"waveform": w, "lengths": [2000]}})
    assert code == 200 and body["outputs"]["frames"] == [2]


def test_client_metadata_check(server):
    """The client's reading of the server's metadata, and how it reports a refusal: the URL it
    asked, the HTTP status and the server's own error text, whatever that text is."""
    meta = C.rest_metadata(server.url, "lstm_grid_s1")
    assert meta["model_spec"] == {"name": "lstm_grid_s1", "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "full_length", "features"} <= set(sigs)
    wave = sigs["serving_default"]["inputs"]["waveform"]
    assert wave["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in wave["tensor_shape"]["dim"]] == ["-1", "-1"]
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert C.check_signature(meta) is True
    assert C.check_signature(meta, "full_length") is False
    with pytest.raises(C.ServingError, match="needs 'waveform' and 'lengths'"):
        C.check_signature(meta, "features")
    with pytest.raises(C.ServingError, match="has no signature 'nope'.*serving_default"):
        C.check_signature(meta, "nope")
    with pytest.raises(C.ServingError) as e:
        C.rest_metadata(server.url, "nope")
    url = C.metadata_url(server.url, "nope")
    code, body = _get(url)  # what the server itself answered
    assert code == 404 and body["error"]
    assert str(e.value) == f"{url}: HTTP 404 Not Found: {body['error']}"
    assert e.value.status == 404 and e.value.url == url


def test_rest_predict_equals_loaded_model(server, lstm, clips):
    ya, yb = _load(clips["a"], 44100), _load(clips["b"], 44100)
    rows = C.rest_predict(server.url, "lstm_grid_s1", [ya, yb], version=1)
    for y, row in zip((ya, yb), rows):
        np.testing.assert_allclose(row, lstm.predict(y), atol=ATOL)
    assert server.requests[-1]["shapes"] == {"waveform": (2, len(ya)), "lengths": (2,)}
    (one,) = C.rest_predict(server.url, "lstm_grid_s1", [yb[:44100]], signature="full_length",
                            with_lengths=False)
    np.testing.assert_allclose(one, lstm.predict(yb[:44100]), atol=ATOL)
    with pytest.raises(C.ServingError, match="(?s)HTTP 400.*shorter than") as e:
        C.rest_predict(server.url, "lstm_grid_s1", [ya[:100]])
    assert e.value.status == 400 and e.value.url.endswith("/v1/models/lstm_grid_s1:predict")


# ----------------------------------------------------------------------------- the CLI end to end

def test_client_batch_end_to_end(server, lstm, lstm_dir, clips, tmp_path, capsys):
    out = tmp_path / "out"
    n0 = len(server.requests)
    args = ["--url", server.url, "--model", "lstm_grid_s1", "--card", str(lstm_dir / "model_card.json"),
            "-o", str(out), "--batch", "2", "--video", "none", "--quiet",
            str(clips["a"]), str(clips["b"])]
    assert C.main(args) == 0, capsys.readouterr().err
    assert len(server.requests) == n0 + 1 and server.requests[-1]["shapes"]["lengths"] == (2,)
    for name in ("a", "b"):
        y = _load(clips[name], 44100)
        got = np.load(out / f"{name}.npy")
        assert got.dtype == np.float32 and got.shape == (1 + len(y) // 1764, 68, 2)
        np.testing.assert_allclose(got, lstm.predict(y), atol=ATOL)
        assert not (out / f"{name}.mp4").exists()
    # a second run resumes: nothing is sent again
    assert C.main(args) == 0
    assert len(server.requests) == n0 + 1 and "2 input(s) skipped" in capsys.readouterr().out


def test_client_writes_video_with_sound(server, lstm, clips, tmp_path, capsys):
    from tf_talkface.audio.io import media_info

    out = tmp_path / "out"
    rc = C.main(["--url", server.url, "--model", "lstm_grid_s1", "--version", "1",
                 "--sample-rate", "44100", "-o", str(out), "--size", "256",  # painted (default)
                 "--quiet", str(clips["b"])])
    assert rc == 0, capsys.readouterr().err
    got = np.load(out / "b.npy")
    np.testing.assert_allclose(got, lstm.predict(_load(clips["b"], 44100)), atol=ATOL)
    info = media_info(out / "b.mp4")
    assert info["has_video"] and info["has_audio"]
    assert abs(info["duration_s"] - len(got) / 25) < 0.2


def test_client_bad_file_in_a_batch_does_not_stop_the_others(server, lstm_dir, clips, tmp_path,
                                                             capsys):
    from tf_talkface.audio.io import write_wav

    short = tmp_path / "in" / "short.wav"  # 10 ms: shorter than the LSTM's 883-sample minimum
    write_wav(short, np.full(160, 0.1, np.float32), 16000)
    junk = tmp_path / "in" / "junk.wav"
    junk.write_text("not audio")
    out = tmp_path / "out"
    # --sample-rate (no card): the short file reaches the server, which refuses the batch
    rc = C.main(["--url", server.url, "--model", "lstm_grid_s1", "--sample-rate", "44100",
                 "-o", str(out), "--batch", "3", "--video", "none", "--quiet",
                 str(clips["a"]), str(short), str(junk)])
    err = capsys.readouterr().err
    assert rc == 1
    assert (out / "a.npy").is_file() and not (out / "short.npy").exists()
    assert "short.wav" in err and "shorter than 883 samples" in err and "HTTP 400" in err
    assert "junk.wav" in err and "2 of 3 input(s) failed" in err
    # with the card, the short file is refused before sending (its minimum length is known)
    n0 = len(server.requests)
    rc = C.main(["--url", server.url, "--model", "lstm_grid_s1", "--card", str(lstm_dir),
                 "-o", str(out), "--batch", "3", "--video", "none", "--quiet",
                 str(clips["a"]), str(short)])
    err = capsys.readouterr().err
    assert rc == 1 and "audio too short (441 samples at 44100 Hz" in err
    assert len(server.requests) == n0  # a.npy exists (skipped), short.wav never sent


def test_client_retries_rows_only_on_400_and_relays_other_errors(server, lstm, lstm_dir, clips,
                                                                 tmp_path, capsys, monkeypatch):
    """The server's answers are replaced by made-up ones, so only the client's reaction is
    tested: a 400 for a batch -> each file is sent again on its own (one bad row must not sink
    the others); any other error -> no retry, every file of the batch fails with the URL, the
    status and the server's text, and nothing is written."""
    real, calls = server.predict, []

    def batch_refused(name, version, raw):
        calls.append(len(json.loads(raw)["inputs"]["lengths"]))
        if calls[-1] > 1:
            raise FakeTFServing.Error(400, "made-up refusal of a whole batch")
        return real(name, version, raw)

    monkeypatch.setattr(server, "predict", batch_refused)
    args = ["--url", server.url, "--model", "lstm_grid_s1", "--card", str(lstm_dir), "--batch",
            "2", "--video", "none", "--quiet", str(clips["a"]), str(clips["b"])]
    assert C.main([*args, "-o", str(tmp_path / "ok")]) == 0, capsys.readouterr().err
    assert calls == [2, 1, 1]
    for name in ("a", "b"):
        np.testing.assert_allclose(np.load(tmp_path / "ok" / f"{name}.npy"),
                                   lstm.predict(_load(clips[name], 44100)), atol=ATOL)

    def unavailable(name, version, raw):
        calls.append(len(json.loads(raw)["inputs"]["lengths"]))
        raise FakeTFServing.Error(503, "made-up overload")

    monkeypatch.setattr(server, "predict", unavailable)
    calls.clear()
    capsys.readouterr()
    assert C.main([*args, "-o", str(tmp_path / "down")]) == 1
    assert calls == [2]  # not retried row by row
    err = capsys.readouterr().err.splitlines()
    url = C.predict_url(server.url, "lstm_grid_s1")
    for name in ("a", "b"):
        assert f"client: failed: {clips[name]}: {url}: HTTP 503 Service Unavailable: made-up overload" in err
    assert "2 of 2 input(s) failed" in err
    assert not list((tmp_path / "down").glob("*.npy"))
    with pytest.raises(C.ServingError) as e:
        C.rest_predict(server.url, "lstm_grid_s1", [_load(clips["b"], 44100)])
    assert (e.value.status, e.value.url) == (503, url) and str(e.value).endswith(": made-up overload")


def test_client_errors(server, lstm_dir, clips, tmp_path, capsys):
    card = str(lstm_dir / "model_card.json")
    base = ["-o", str(tmp_path / "out"), "--video", "none", "--quiet", str(clips["b"])]
    # connection refused: exit 1, the message names the URL
    dead = f"http://127.0.0.1:{_free_port()}"
    assert C.main(["--url", dead, "--model", "lstm_grid_s1", "--card", card, *base]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach TF Serving at {dead}/v1/models/lstm_grid_s1/metadata" in err
    # no sample rate: bad arguments
    assert C.main(["--url", server.url, "--model", "lstm_grid_s1", *base]) == 2
    assert "--sample-rate" in capsys.readouterr().err
    for bad in (["--batch", "0"], ["--url", "localhost:8501"], ["--card", str(tmp_path / "no.json")]):
        assert C.main(["--url", server.url, "--model", "lstm_grid_s1", "--card", card, *bad,
                       *base]) == 2, bad
    capsys.readouterr()
    # unknown model: found by the metadata check, before any audio is sent; the error line names
    # the URL and carries the server's 404 text
    n0 = len(server.requests)
    assert C.main(["--url", server.url, "--model", "nope", "--card", card, *base]) == 1
    err = capsys.readouterr().err
    url = C.metadata_url(server.url, "nope")
    code, body = _get(url)
    assert code == 404
    assert f"client: error: {url}: HTTP 404 Not Found: {body['error']}" in err.splitlines()
    assert len(server.requests) == n0
    # a signature that does not take waveforms
    assert C.main(["--url", server.url, "--model", "lstm_grid_s1", "--card", card,
                   "--signature", "features", *base]) == 1
    assert "needs 'waveform' and 'lengths'" in capsys.readouterr().err
    # a wrong sample rate is caught from the frame count
    assert C.main(["--url", server.url, "--model", "lstm_grid_s1", "--sample-rate", "8000",
                   *base]) == 1
    assert "not the served model's" in capsys.readouterr().err
    assert not (tmp_path / "out" / "b.npy").exists()


def test_cnn_model_at_8khz(server, clips, tmp_path, tmp_path_factory, capsys, checkpoint):
    from tf_talkface.export import export
    from tf_talkface.saved_model import load_model

    src = checkpoint("cnn_nr")
    cnn_dir = export(src, tmp_path_factory.mktemp("served") / "cnn_nr" / "2")
    server.add_model("cnn_nr", 2, cnn_dir)
    meta = C.rest_metadata(server.url, "cnn_nr")
    assert "pca_coefficients" in meta["metadata"]["signature_def"]["signature_def"][
        "serving_default"]["outputs"]
    out = tmp_path / "out"
    rc = C.main(["--url", server.url, "--model", "cnn_nr", "--card", str(cnn_dir), "-o", str(out),
                 "--batch", "2", "--video", "none", "--quiet", str(clips["a"]), str(clips["b"])])
    assert rc == 0, capsys.readouterr().err
    m = load_model(cnn_dir)
    for name in ("a", "b"):
        y = _load(clips[name], 8000)
        got = np.load(out / f"{name}.npy")
        assert got.shape == (-(-len(y) // 320), 68, 2)
        np.testing.assert_allclose(got, m.predict(y), atol=ATOL)


def test_grpc_without_serving_api_is_a_clear_error(lstm_dir, clips, tmp_path, capsys):
    try:
        import tensorflow_serving  # noqa: F401
        pytest.skip("tensorflow-serving-api is installed here")
    except ImportError:
        pass
    with pytest.raises(C.ServingError, match="pip install tensorflow-serving-api"):
        C.grpc_predict("localhost:8500", "m", [np.zeros(2000, np.float32)])
    rc = C.main(["--grpc", f"127.0.0.1:{_free_port()}", "--model", "lstm_grid_s1", "--card",
                 str(lstm_dir), "-o", str(tmp_path), "--video", "none", "--quiet", str(clips["b"])])
    assert rc == 1 and "pip install tensorflow-serving-api" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the serving script

def _stub_path(tmp_path: Path, tools: tuple[str, ...]) -> str:
    """PATH with stub ``docker`` / ``tensorflow_model_server`` that echo their arguments (and the
    config file given to the binary) first, then only the system folders (no real docker)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(parents=True, exist_ok=True)
    body = {
        "docker": 'echo "STUB docker $*"\n',
        "tensorflow_model_server": (
            'echo "STUB tensorflow_model_server $*"\n'
            'for a in "$@"; do case "$a" in --model_config_file=*) cat "${a#*=}";; esac; done\n'),
    }
    for t in tools:
        (stubs / t).write_text("#!/bin/sh\n" + body[t])
        (stubs / t).chmod(0o755)
    return f"{stubs}:/usr/bin:/bin"


def _serve(args, path: str) -> subprocess.CompletedProcess:
    # TMPDIR: the script's generated config goes beside the stubs (under pytest's tmp_path),
    # not into /tmp where every run would leave a tf_talkface_serving.* folder behind
    stubs = Path(path.split(":")[0])
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    if stubs.is_relative_to(tempfile.gettempdir()) and "pytest-" in str(stubs):
        env["TMPDIR"] = str(stubs.parent)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _models(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "models" / "lstm_grid_s1", tmp_path / "models" / "cnn nr"
    for d in (a / "1", b / "1", b / "3", b / "variables_only"):
        d.mkdir(parents=True)
    for d in (a / "1", b / "1", b / "3"):
        (d / "saved_model.pb").write_bytes(b"")
    return a, b


def _config_entries(text: str) -> list[dict]:
    blocks = re.findall(r"config \{(.*?)\n  \}", text, re.S)
    return [dict(re.findall(r'(\w+): "([^"]*)"', b), policy="model_version_policy { all {} }" in b)
            for b in blocks]


def test_serve_script_syntax_and_help():
    assert shutil.which("bash")
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "MODEL_DIR_OR_CONFIG" in r.stdout and "--binary" in r.stdout


def test_serve_script_binary_and_docker(tmp_path):
    a, b = _models(tmp_path)
    b = b.rename(b.with_name("cnn_nr"))
    binpath = _stub_path(tmp_path, ("tensorflow_model_server",))
    r = _serve(["--binary", "--rest-port", "9501", "--grpc-port", "9500", str(a), str(b),
                "--", "--enable_batching"], binpath)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["STUB", "tensorflow_model_server", "--port=9500",
                                "--rest_api_port=9501", lines[0].split()[4], "--enable_batching"]
    cfg = lines[0].split()[4].split("=", 1)[1]
    assert Path(cfg).is_file() and lines[1] == "model_config_list {"
    assert Path(cfg).is_relative_to(tmp_path)  # nothing left in the system's /tmp
    assert _config_entries(r.stdout) == [
        {"name": "lstm_grid_s1", "base_path": str(a.resolve()), "model_platform": "tensorflow",
         "policy": True},
        {"name": "cnn_nr", "base_path": str(b.resolve()), "model_platform": "tensorflow",
         "policy": True}]
    assert "versions 1 3" in r.stderr  # cnn_nr: both versions, the non-numbered folder ignored

    # docker is the default when it is on PATH; folders mounted read-only at /models/NAME
    both = _stub_path(tmp_path, ("docker", "tensorflow_model_server"))
    cfg = tmp_path / "cfg" / "models.config"
    r = _serve(["--config-out", str(cfg), str(a), str(b)], both)
    assert r.returncode == 0, r.stderr
    argv = r.stdout.split()
    assert argv[:4] == ["STUB", "docker", "run", "--rm"]
    assert "-p 8501:8501 -p 8500:8500" in r.stdout
    assert f"-v {a.resolve()}:/models/lstm_grid_s1:ro" in r.stdout
    assert f"-v {b.resolve()}:/models/cnn_nr:ro" in r.stdout
    assert f"-v {cfg}:/models/models.config:ro" in r.stdout
    assert argv[-2:] == ["tensorflow/serving:latest", "--model_config_file=/models/models.config"]
    assert _config_entries(cfg.read_text()) == [
        {"name": "lstm_grid_s1", "base_path": "/models/lstm_grid_s1",
         "model_platform": "tensorflow", "policy": True},
        {"name": "cnn_nr", "base_path": "/models/cnn_nr", "model_platform": "tensorflow",
         "policy": True}]


def test_serve_script_errors(tmp_path):
    a, b = _models(tmp_path)
    both = _stub_path(tmp_path, ("docker", "tensorflow_model_server"))
    r = _serve([str(a)], "/usr/bin:/bin")  # neither docker nor the binary
    assert r.returncode == 2 and "neither 'docker' nor 'tensorflow_model_server'" in r.stderr
    r = _serve(["--binary", str(a)], _stub_path(tmp_path / "d", ("docker",)))
    assert r.returncode == 2 and "'tensorflow_model_server' is not on PATH" in r.stderr
    empty = tmp_path / "models" / "empty"
    (empty / "1").mkdir(parents=True)  # a version folder without saved_model.pb
    r = _serve([str(empty)], both)
    assert r.returncode == 2 and "no numbered version folder with saved_model.pb" in r.stderr
    r = _serve([str(a / "1")], both)
    assert r.returncode == 2 and "is a version folder" in r.stderr
    r = _serve([str(b)], both)
    assert r.returncode == 2 and "must be letters, digits" in r.stderr  # "cnn nr"
    r = _serve(["--rest-port", "http", str(a)], both)
    assert r.returncode == 2 and "bad port" in r.stderr
    r = _serve([str(a), str(tmp_path / "nowhere")], both)
    assert r.returncode == 2 and "no such folder" in r.stderr
    assert "STUB" not in r.stdout
