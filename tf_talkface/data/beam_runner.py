"""Per-item work as an Apache Beam pipeline: ``prepare --runner beam`` (issue 15).

:func:`beam_map` is ``[fn(x) for x in items]`` computed by a Beam pipeline — the DirectRunner on
this machine, the same pipeline on Flink, Spark or Dataflow — with the results back in the
driver, in the order of ``items``. ``prepare`` hands it its per-clip function (decode, landmarks,
features, the per-clip work file), so both runners run the very same code on every clip, and
the global steps (splits, normalisation/PCA, shards, manifest) run unchanged on the summaries.

How the pipeline is laid out, so that it scales past what fits in a job description:

  ``items`` -> ``staging/items.txt`` (one pickled ``(index, item)`` per line)
     | ReadFromText | Reshuffle (spreads the clips over the workers) | Map(fn)
     | WriteToText ``staging/results-*`` -> read back, sorted by index

``staging`` is a folder the caller gives (``prepare``: inside the dataset's work folder), which
on a cluster must be storage every worker and the driver see at the same path (the per-clip
work files are written there too). Items and results travel pickled by reference, so ``fn``
and the classes in ``items`` must be importable by name on the workers (module-level, not
``__main__``); nothing is a lambda over module state. ``apache_beam`` is imported inside the
functions: the package works without the ``beam`` extra.
"""
from __future__ import annotations

import base64
import contextlib
import logging
import os
import pickle
import shlex
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tf_talkface.data.build import PrepareError

__all__ = ["BEAM_EXTRA", "NO_FORK_HANDLERS", "beam_options", "beam_map", "IndexedCall", "encode",
           "decode"]

log = logging.getLogger("tf_talkface.beam")

BEAM_EXTRA = 'pip install -e ".[beam]"  (apache-beam with protobuf < 5 for TensorFlow 2.17)'

_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "GRPC_VERBOSITY": "ERROR"}


def encode(obj: Any) -> str:
    """One text line for ``obj`` (pickled, base64): how items and results cross the pipeline."""
    return base64.b64encode(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def decode(line: str | bytes) -> Any:
    """Inverse of :func:`encode`."""
    return pickle.loads(base64.b64decode(line))


NO_FORK_HANDLERS = "IMAGEIO_FFMPEG_NO_PREVENT_SIGINT"
"""Set in every process that runs the map step. A Beam worker runs gRPC threads; imageio-ffmpeg's
frame reader starts ffmpeg with ``preexec_fn=os.setpgrp``, which makes Python ``fork()`` (not
``vfork``) and so runs gRPC's fork handlers in the child, which then at times dies before
ffmpeg starts ("cannot decode video: ... epoll_wait error: Bad file descriptor", seen on the
DirectRunner with 2 workers). With this variable imageio-ffmpeg passes no ``preexec_fn`` (its
documented switch); the only difference is that ffmpeg stays in the worker's process group."""


class IndexedCall:
    """The pipeline's map step: an encoded ``(index, item)`` line -> the encoded
    ``(index, fn(item))`` line. A plain module-level class holding ``fn`` (pickled by reference),
    so Beam ships it to any runner's workers without apache_beam imported here."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, line: str) -> str:
        os.environ.setdefault(NO_FORK_HANDLERS, "1")
        index, item = decode(line)
        return encode((index, self.fn(item)))


def beam_options(text: str | None, workers: int | None = None) -> list[str]:
    """The pipeline's arguments: ``text`` split like a shell command line (``--beam-options``),
    with the defaults filled in for what it does not say: ``--runner=DirectRunner``,
    ``--default_sdk_harness_log_level=WARNING`` (workers log warnings and errors); for the
    DirectRunner ``--direct_num_workers=WORKERS`` (``--workers``) and
    ``--direct_running_mode=multi_processing`` when that is more than one (one process per
    worker, as the local pool; ``in_memory`` for one).

    Raises:
        PrepareError: ``text`` is not a valid command line (unbalanced quotes).
    """
    try:
        args = shlex.split(text or "")
    except ValueError as e:
        raise PrepareError(f"--beam-options {text!r}: {e}") from e

    def given(name: str) -> str | None:
        for i, a in enumerate(args):
            if a == f"--{name}":
                return args[i + 1] if i + 1 < len(args) else ""
            if a.startswith(f"--{name}="):
                return a.split("=", 1)[1]
        return None

    if given("default_sdk_harness_log_level") is None:  # the workers' INFO chatter
        args.append("--default_sdk_harness_log_level=WARNING")
    runner = given("runner")
    if runner is None:
        runner = "DirectRunner"
        args.append(f"--runner={runner}")
    if runner in ("DirectRunner", "direct", "BundleBasedDirectRunner"):
        n = given("direct_num_workers")
        if n is None:
            n = str(max(1, workers or os.cpu_count() or 1))
            args.append(f"--direct_num_workers={n}")
        if given("direct_running_mode") is None:
            args.append("--direct_running_mode="
                        + ("multi_processing" if n not in ("0", "1") else "in_memory"))
    return args


@contextlib.contextmanager
def _quiet_beam() -> Iterator[None]:
    """Beam's INFO chatter (bundle and worker start-up) stays out of a CLI's log; its warnings
    and errors show. apache_beam's import warns through the root logger that the optional GCP
    clients are absent: not something a user of the DirectRunner can act on."""

    class _NoGcpNotice(logging.Filter):
        def filter(self, record):
            return "apitools not found" not in record.getMessage()

    root, beam_log = logging.getLogger(), logging.getLogger("apache_beam")
    flt = _NoGcpNotice()
    root.addFilter(flt)
    level = beam_log.level
    if level == logging.NOTSET:
        beam_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeFilter(flt)
        beam_log.setLevel(level)


@contextlib.contextmanager
def _worker_environment(args: list[str]) -> Iterator[None]:
    """The DirectRunner's worker processes start with one BLAS/OpenMP thread each, as the local
    pool's workers do (``prepare._worker_init``): N workers on N cores, no oversubscription; and
    gRPC's notices (Beam talks to its workers over gRPC) at error level only. The variables are
    set for the workers' start only and restored after; a value the user set is kept."""
    multi = "--direct_running_mode=multi_processing" in args
    saved = {v: os.environ.get(v) for v in _WORKER_ENV}
    if multi:
        for v, value in _WORKER_ENV.items():
            if v == "GRPC_VERBOSITY":
                os.environ.setdefault(v, value)
            else:
                os.environ[v] = value
    try:
        yield
    finally:
        if multi:
            for v, old in saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old


def beam_map(fn: Callable[[Any], Any], items: Sequence[Any], staging: str | os.PathLike,
             options: str | None = None, workers: int | None = None) -> list[Any]:
    """``[fn(x) for x in items]`` computed by an Apache Beam pipeline.

    Args:
        fn: module-level function of one argument (importable on the workers); its results
            must pickle. It should catch its own errors: an exception that escapes it fails the
            pipeline (after the runner's retries).
        items: the inputs (picklable; their classes importable on the workers).
        staging: folder for the pipeline's input and output files (a fresh subfolder is used
            and removed afterwards); on a cluster, storage that the driver and every worker see.
        options: Beam pipeline options as one command-line string (``--beam-options``);
            defaults from :func:`beam_options`.
        workers: the DirectRunner's worker count when ``options`` does not set one.

    Returns:
        The results, in the order of ``items``.

    Raises:
        PrepareError: apache-beam is not installed, the options are malformed, or the pipeline
            failed (work already done by ``fn`` stays where it wrote it).
    """
    args = beam_options(options, workers)
    with _quiet_beam():
        try:
            import apache_beam as beam
            from apache_beam.options.pipeline_options import PipelineOptions
        except ImportError as e:
            raise PrepareError(f"--runner beam needs Apache Beam, which is not installed ({e}); "
                               f"install the extra: {BEAM_EXTRA}") from e
    if not items:
        return []
    run_dir = Path(staging) / f"beam-{uuid.uuid4().hex[:12]}"
    run_dir.mkdir(parents=True)
    try:
        src = run_dir / "items.txt"
        with open(src, "w") as f:
            for i, item in enumerate(items):
                f.write(encode((i, item)) + "\n")
        log.info("Beam: %d items, options %s", len(items), " ".join(args))
        with _quiet_beam(), _worker_environment(args):
            try:
                with beam.Pipeline(options=PipelineOptions(args)) as p:
                    (p
                     | "ReadItems" >> beam.io.ReadFromText(str(src))
                     | "Spread" >> beam.Reshuffle()
                     | "Process" >> beam.Map(IndexedCall(fn))
                     | "WriteResults" >> beam.io.WriteToText(str(run_dir / "results"),
                                                            file_name_suffix=".txt"))
            except Exception as e:  # the runner's own failure (a worker crash after retries, ...)
                raise PrepareError(f"Beam pipeline failed: {type(e).__name__}: {e} (work already "
                                   "done is kept: a re-run resumes from it)") from e
        results: dict[int, Any] = {}
        for part in sorted(run_dir.glob("results-*")):
            with open(part) as f:
                for line in f:
                    if line.strip():
                        i, r = decode(line)
                        results[i] = r
        lost = [i for i in range(len(items)) if i not in results]
        if lost:
            raise PrepareError(f"Beam pipeline returned no result for {len(lost)} of {len(items)} "
                               f"items (first: {items[lost[0]]!r})")
        return [results[i] for i in range(len(items))]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
