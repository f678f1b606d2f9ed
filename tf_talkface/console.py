"""What every command-line tool shares about its console: TensorFlow imported without its start-up
noise, and OS errors told in one line that names the path.

TensorFlow prints its start-up chatter from C++ straight to file descriptor 2 while it is imported
(on a CPU machine: "Unable to register cuFFT/cuDNN/cuBLAS factory" at *error* level, which
``TF_CPP_MIN_LOG_LEVEL=2`` does not hide, plus oneDNN/CUDA/TensorRT notices).
:func:`quiet_tensorflow` sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it) and arranges
that the first ``import tensorflow`` of the process — wherever it happens, usually deep inside a
library function — runs with file descriptor 2 captured; afterwards every captured line that is
not known start-up noise (:data:`STARTUP_NOISE`) is written back to stderr, so real warnings and
errors still show. The CLI modules call it when they are imported (spawned workers import them
too); nothing here imports TensorFlow, so ``--help`` stays instant.
"""
from __future__ import annotations

import contextlib
import errno
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import warnings
from typing import Iterator

__all__ = ["STARTUP_NOISE", "quiet_tensorflow", "captured_fd2", "os_error_message"]

STARTUP_NOISE = re.compile(
    r"Unable to register cu(FFT|DNN|BLAS) factory"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|computation placer already registered"
    r"|cuda_executor\.cc.*(NUMA|successful)"
    r"|failed call to cuInit")
"""Lines TensorFlow prints at import on machines without a GPU (or with one): never useful to a
CLI user. Anything else captured during the import is shown."""


def _flush() -> None:
    for f in (sys.stderr, sys.__stderr__):
        try:
            if f is not None:
                f.flush()
        except (OSError, ValueError):
            pass


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Capture what is written to file descriptor 2 (C++ and Python alike) inside the block;
    the yielded list receives the captured lines when the block ends."""
    lines: list[str] = []
    _flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def _replay(lines: list[str]) -> None:
    kept = [ln for ln in lines if ln.strip() and not STARTUP_NOISE.search(ln)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with captured_fd2() as lines:
            self._loader.exec_module(module)
        _replay(lines)

    def __getattr__(self, name):  # is_package, get_code, get_source, ...
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the normal path finder does, with a loader that captures fd 2."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up noise out of this process's stderr (see the module docstring).
    Idempotent; a no-op once TensorFlow is imported. ``TF_CPP_MIN_LOG_LEVEL`` set by the user
    wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # requests (pulled in by a dependency at run time) imports urllib3's SOCKS support, which
    # warns when PySocks is absent: nothing a CLI user can act on
    warnings.filterwarnings("ignore", message="SOCKS support in urllib3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


def os_error_message(e: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OS error: the path and the reason (``"out/a.npy: no space left on
    device"``), with a hint for the common cases (read-only, full disk, permission)."""
    where = path if path is not None else (e.filename or "")
    reason = e.strerror or str(e) or type(e).__name__
    hint = {errno.ENOSPC: " (the disk is full)", errno.EROFS: " (read-only file system)",
            errno.EACCES: " (permission denied: check the folder's owner and mode)",
            errno.EDQUOT: " (disk quota exceeded)"}.get(e.errno or 0, "")
    if hint and hint.strip(" ()").lower() in reason.lower():
        hint = ""
    other = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
    return f"{where}{other}: {reason[0].lower() + reason[1:] if reason else reason}{hint}"
