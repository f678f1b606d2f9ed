"""`prepare --runner beam` (issue 15): the per-clip work as an Apache Beam pipeline on the
DirectRunner gives the same dataset as the local process pool — same clips, skip reasons,
splits, frame counts, records (landmarks, features, PCA to float round-off) and the same
manifest apart from run metadata — for every recipe (eskimez2018, eskimez2020, and atvgnet
with its JPEG face crops), on real GRID clips plus bad files.

The Beam runs use their own, initially empty landmark cache, so dlib runs inside the Beam
workers (2 processes, ``multi_processing``) rather than reading what the local run cached; the
2020 Beam run goes through the CLI (``python -m``), whose per-clip function must unpickle by
name in the workers."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tf_talkface import prepare as P
from tf_talkface.data.beam_runner import beam_map, beam_options
from tf_talkface.data.build import PrepareError
from tf_talkface.data.manifest import load_manifest, shard_paths
from tf_talkface.data.records import RecordSpec, iter_clips

from conftest import SMALL_CLIPS, missing

REPO = Path(__file__).resolve().parents[1]
CLIPS = SMALL_CLIPS[:4]  # shared with conftest's small_datasets: in a full run their landmarks are cached
BEAM_2 = "--direct_num_workers=2 --direct_running_mode=multi_processing"
RUN_METADATA = ("created", "seconds", "runner", "landmark_cache")
"""Manifest keys that describe the run, not the data (plus the build time in shard names)."""


@pytest.fixture(scope="module")
def beam():
    try:
        import apache_beam
    except ImportError:
        missing('apache-beam is not installed: pip install -e ".[beam]"')
    return apache_beam


@pytest.fixture(scope="module")
def corpus(data_dir, tmp_path_factory):
    """4 real GRID s1 clips and 2 bad files (random bytes as .mpg, an empty .mpg)."""
    root = tmp_path_factory.mktemp("beam_corpus")
    s1 = root / "s1"
    s1.mkdir()
    for c in CLIPS:
        (s1 / f"{c}.mp4").symlink_to(data_dir / "grid" / "s1" / f"{c}.mp4")
    (s1 / "garbage.mpg").write_bytes(np.random.default_rng(15).bytes(40_000))
    (s1 / "empty.mpg").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def built(beam, corpus, landmark_cache, tmp_path_factory):
    """{recipe: (local dataset, beam dataset)}; the Beam runs share one landmark cache (dlib
    runs in the first, eskimez2018)."""
    out = tmp_path_factory.mktemp("beam_datasets")
    beam_cache = out / "beam_cache"  # empty: landmarks extracted in the Beam workers
    common = dict(split="0.5,0.25,0.25", seed=1, progress=False)
    res = {}
    for recipe in ("eskimez2018", "eskimez2020", "atvgnet"):
        local, on_beam = out / "local" / recipe, out / "beam" / recipe  # same name: the 2020
        # basis records the dataset folder's name
        P.prepare([corpus / "s1"], local, recipe, workers=2, cache_dir=str(landmark_cache), **common)
        if recipe != "eskimez2020":
            P.prepare([corpus / "s1"], on_beam, recipe, workers=2, cache_dir=str(beam_cache),
                      runner="beam", beam_options=BEAM_2, **common)
        else:  # the CLI: the per-clip function and ClipJob must unpickle by name in the workers
            r = subprocess.run(
                [sys.executable, "-m", "tf_talkface.prepare", "--videos", str(corpus / "s1"),
                 "--out", str(on_beam), "--recipe", recipe, "--split", common["split"],
                 "--seed", str(common["seed"]), "--cache-dir", str(beam_cache), "--quiet",
                 "--runner", "beam", f"--beam-options={BEAM_2}"],
                capture_output=True, text=True, cwd=REPO, timeout=300)
            assert r.returncode == 0, r.stderr[-3000:]
            assert "2 skipped" in r.stdout, r.stdout
        res[recipe] = (local, on_beam)
    return res


def _without_run_metadata(m: dict) -> dict:
    m = json.loads(json.dumps(m))
    for k in RUN_METADATA:
        m.pop(k, None)
    stamp = re.compile(r"-\d{14}(?=-)")  # shard names carry the build time
    for s in m["shards"]:
        s["file"] = stamp.sub("-RUN", s["file"])
        s.pop("bytes")  # same records, same bytes; compared through the records below
    for c in m["clips"]:
        c["shard"] = stamp.sub("-RUN", c["shard"])
    return m


def _records(d: Path) -> dict[str, dict]:
    m = load_manifest(d)
    spec = RecordSpec.from_manifest(m)
    return {c["clip_id"]: c for s in ("train", "val", "test")
            for c in iter_clips(shard_paths(d, m, s), spec)}


def _close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    if a.dtype.kind in "fc":
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=what)
    else:
        assert (a == b).all(), what


@pytest.mark.parametrize("recipe", ["eskimez2018", "eskimez2020", "atvgnet"])
def test_beam_gives_the_local_runners_dataset(built, recipe):
    local, on_beam = built[recipe]
    ml, mb = load_manifest(local), load_manifest(on_beam)
    assert ml["runner"] == {"name": "local", "workers": 2}
    assert mb["runner"]["name"] == "beam"
    assert "--runner=DirectRunner" in mb["runner"]["options"]
    assert "--direct_running_mode=multi_processing" in mb["runner"]["options"]
    # the clips, their splits and frame counts, the skip reasons: in the whole manifest
    assert {c["clip_id"] for c in mb["clips"]} == {f"s1/{c}" for c in CLIPS}
    assert sorted(s["source"] for s in mb["skipped"]) == ["s1/empty.mpg", "s1/garbage.mpg"]
    assert all(c["num_frames"] == 75 for c in mb["clips"])
    for k in set(ml) | set(mb):  # key by key first, for a readable failure
        if k not in RUN_METADATA and k not in ("shards", "clips", "feature_stats", "normalisation"):
            assert ml.get(k) == mb.get(k), k
    # landmark-derived statistics may differ in the last digit: dlib ran in other processes
    nl, nb = _without_run_metadata(ml), _without_run_metadata(mb)
    for section in ("feature_stats", "normalisation"):
        _close_nested(nl.pop(section), nb.pop(section), section)
    assert nl == nb
    # the records themselves
    rl, rb = _records(local), _records(on_beam)
    assert set(rl) == set(rb)
    if recipe == "atvgnet":  # the face crops (JPEG bytes) are among what is compared
        assert {"image_jpeg", "crop_matrix", "mfcc"} <= set(next(iter(rb.values())))
    for cid in rl:
        a, b = rl[cid], rb[cid]
        assert set(a) == set(b), cid
        for k in a:
            if isinstance(a[k], np.ndarray):
                _close(a[k], b[k], f"{cid} {k}")
            else:
                assert a[k] == b[k], f"{cid} {k}"
    if recipe != "eskimez2018":
        bl = json.loads((local / "basis.json").read_text())
        bb = json.loads((on_beam / "basis.json").read_text())
        _close_nested(bl, bb, "basis.json")


def _close_nested(a, b, what):
    if isinstance(a, dict):
        assert set(a) == set(b), what
        for k in a:
            _close_nested(a[k], b[k], f"{what}.{k}")
    elif isinstance(a, list) and a and isinstance(a[0], (list, float, int)):
        _close(a, b, what)
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), what
    else:
        assert a == b, what


def test_beam_options_defaults_and_overrides():
    assert sorted(beam_options(None, 3)) == ["--default_sdk_harness_log_level=WARNING",
                                             "--direct_num_workers=3",
                                             "--direct_running_mode=multi_processing",
                                             "--runner=DirectRunner"]
    assert "--direct_running_mode=in_memory" in beam_options("", 1)
    given = beam_options("--runner DirectRunner --direct_num_workers=4 "
                         "--direct_running_mode=multi_threading "
                         "--default_sdk_harness_log_level=INFO", 1)
    assert given == ["--runner", "DirectRunner", "--direct_num_workers=4",
                     "--direct_running_mode=multi_threading", "--default_sdk_harness_log_level=INFO"]
    flink = beam_options("--runner=FlinkRunner --flink_master=host:8081", 2)
    assert not [a for a in flink if a.startswith("--direct")]
    with pytest.raises(PrepareError, match="beam-options"):
        beam_options('--runner="DirectRunner', 2)


def test_without_apache_beam_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam -> ImportError
    with pytest.raises(PrepareError, match=r"\.\[beam\]"):
        beam_map(str, [1], tmp_path)


def test_beam_map_keeps_the_order_and_cleans_up(beam, tmp_path):
    items = [f"item {i}" for i in range(7)]
    assert beam_map(str.upper, items, tmp_path, "--direct_num_workers=1") == \
        [s.upper() for s in items]
    assert list(tmp_path.iterdir()) == []


def test_cli_passes_beam_options_that_start_with_dashes(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(P, "prepare", lambda *a, **k: seen.update(k) or {})
    monkeypatch.setattr(P, "summarize", lambda m: "")
    for given, expect in ((["--beam-options", "--runner=DirectRunner"], "--runner=DirectRunner"),
                          (["--beam-options=--direct_num_workers=2"], "--direct_num_workers=2"),
                          ([], None)):
        assert P.main(["--videos", str(tmp_path), "--out", str(tmp_path / "o"), "--runner", "beam",
                       *given]) == 0
        assert seen["runner"] == "beam" and seen["beam_options"] == expect
