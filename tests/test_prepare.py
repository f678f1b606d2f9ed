"""`prepare` end to end on real GRID clips plus every bad-input case, and its library pieces."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tf_talkface import prepare as P
from tf_talkface.data.manifest import load_manifest, shard_paths
from tf_talkface.data.records import RecordSpec, iter_clips
from tf_talkface.resources import ffmpeg_exe

GOOD = ["bbaf2n", "bbaf3s", "bbaf4p", "bbal6n", "bbal8p", "bbal9a"]


def _ff(*args):
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def corpus(data_dir, tmp_path_factory):
    """A folder of 6 real GRID clips (speaker folder s1) and a folder of broken/odd videos."""
    root = tmp_path_factory.mktemp("corpus")
    good = root / "grid" / "s1"
    good.mkdir(parents=True)
    src = data_dir / "grid" / "s1"
    for g in GOOD:
        (good / f"{g}.mp4").symlink_to(src / f"{g}.mp4")
    bad = root / "bad" / "s9"
    bad.mkdir(parents=True)
    clip = src / "bbas1s.mp4"
    (bad / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    (bad / "empty.avi").write_bytes(b"")
    (bad / "truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    _ff("-i", clip, "-an", "-c:v", "copy", bad / "noaudio.mp4")
    _ff("-f", "lavfi", "-i", "color=c=gray:s=160x120:d=3:r=25", "-f", "lavfi", "-i",
        "sine=frequency=300:duration=3", "-shortest", "-pix_fmt", "yuv420p", bad / "noface.mp4")
    _ff("-i", clip, "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-map", "0:v", "-map", "1:a",
        "-c:v", "copy", "-shortest", bad / "silent.mp4")
    _ff("-i", clip, "-t", "0.2", bad / "short.mp4")
    _ff("-i", clip, "-t", "3", "-i", clip, "-map", "0:v", "-map", "1:a", "-c:v", "copy",
        "-af", "atrim=0:2", bad / "mismatch.mp4")
    _ff("-i", clip, "-r", "30", bad / "fps30.mp4")  # other frame rate: resampled to 25 fps
    return root


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    """Both recipes built over the same corpus, sharing one landmark cache."""
    out = tmp_path_factory.mktemp("datasets")
    cache = out / "cache"
    m18 = P.prepare([corpus / "grid", corpus / "bad"], out / "d2018", "eskimez2018", workers=2,
                    split="0.5,0.25,0.25", seed=3, cache_dir=str(cache), progress=False)
    m20 = P.prepare([corpus / "grid", corpus / "bad"], out / "d2020", "eskimez2020", workers=2,
                    split="0.5,0.25,0.25", seed=3, cache_dir=str(cache), progress=False)
    return out, m18, m20


def test_every_bad_input_is_skipped_with_its_reason(built, corpus):
    _, m18, _ = built
    reasons = {s["source"]: s["reason"] for s in m18["skipped"]}
    expect = {  # words of the reason itself: the file's path is removed before matching
        "bad/s9/corrupt.mp4": "cannot decode video",
        "bad/s9/empty.avi": "empty",
        "bad/s9/noaudio.mp4": "no audio",
        "bad/s9/noface.mp4": "no face",
        "bad/s9/silent.mp4": "silent",
        "bad/s9/short.mp4": "too short",
        "bad/s9/mismatch.mp4": "audio is 50",
    }
    for src, word in expect.items():
        assert src in reasons, f"{src} was not skipped"
        why = reasons[src].replace(str(corpus / src), "").replace(src, "")
        why = why.replace(src.rsplit("/", 1)[1], "").lower()
        assert word in why, (src, reasons[src])
    ids = {c["clip_id"] for c in m18["clips"]}
    assert {f"grid/s1/{g}" for g in GOOD} <= ids
    # other frame rates are resampled: 3 s at 30 fps -> 75 frames at 25 fps
    fps30 = [c for c in m18["clips"] if c["source"] == "bad/s9/fps30.mp4"]
    assert fps30 and fps30[0]["num_frames"] == 75 and abs(fps30[0]["fps_src"] - 30) < 0.01
    # the truncated file is handled one way or the other without aborting the run
    assert "bad/s9/truncated.mp4" in reasons or any(c["source"] == "bad/s9/truncated.mp4"
                                                    for c in m18["clips"])


def test_manifest_and_records_2018(built):
    out, m18, _ = built
    m = load_manifest(out / "d2018")
    assert m == json.loads(json.dumps(m18))
    assert {"clips", "skipped", "recipe", "schema", "shards", "split", "feature_stats"} <= set(m)
    assert m["schema"]["feature_dim"] == 128 and m["recipe"]["name"] == "eskimez2018"
    assert m["counts"]["train"] + m["counts"]["val"] + m["counts"]["test"] == len(m["clips"])
    assert not list((out / "d2018").glob("*.tmp")) and not list((out / "d2018").glob(P.WORK_DIR + "*"))
    spec = RecordSpec.from_manifest(m)
    clips = {}
    for split in ("train", "val", "test"):
        for c in iter_clips(shard_paths(out / "d2018", m, split), spec):
            assert c["split"] == split
            clips[c["clip_id"]] = c
    assert set(clips) == {c["clip_id"] for c in m["clips"]}
    c = clips["grid/s1/bbaf2n"]
    assert c["num_frames"] == 75 and c["features"].shape == (75, 128)
    assert c["landmarks"].shape == (75, 136) and c["landmarks_raw"].shape == (75, 136)
    assert c["audio"].shape == (75 * 1764,) and c["audio_sample_rate"] == 44100
    lm = c["landmarks"].reshape(75, 68, 2)
    assert 0 < lm.min() and lm.max() < 1  # normalised to ~[0, 1]
    # the features are those of the stored audio, recomputed independently with librosa
    import librosa
    y = c["audio"]
    S = np.abs(librosa.stft(y, n_fft=1764, hop_length=1764, win_length=1764, center=True,
                            pad_mode="reflect")) / 883.0
    mel = np.log(1e-16 + librosa.feature.melspectrogram(sr=44100, S=S ** 2, n_mels=64)).T
    ref = np.concatenate([np.vstack([np.zeros((1, 64)), np.diff(mel, 1, axis=0)]),
                          np.vstack([np.zeros((2, 64)), np.diff(mel, 2, axis=0)])], axis=1)[:75]
    np.testing.assert_allclose(c["features"], ref, atol=2e-3)
    # the raw landmarks are dlib's on the video, eye corners where a face would have them
    raw = c["landmarks_raw"].reshape(75, 68, 2)
    assert 0 < raw[..., 0].min() and raw[..., 0].max() < 360 and raw[..., 1].max() < 288
    assert (raw[:, 36, 0] < raw[:, 45, 0]).all() and (raw[:, 57, 1] > raw[:, 30, 1]).all()


def test_manifest_and_records_2020(built):
    out, _, m20 = built
    m = load_manifest(out / "d2020")
    assert m["schema"]["n_pca"] == 6 and m["schema"]["audio_sample_rate"] == 8000
    assert (out / "d2020" / "basis.json").is_file()
    from tf_talkface.face.pca import PCABasis
    basis = PCABasis.load(out / "d2020")
    spec = RecordSpec.from_manifest(m)
    clips = list(iter_clips(shard_paths(out / "d2020", m, "train"), spec))
    assert clips
    for c in clips:
        t = c["num_frames"]
        assert c["audio"].shape == (t * 320,) and c["pca"].shape == (t, 6)
        np.testing.assert_allclose(c["pca"], basis.project(c["landmarks"]), atol=1e-4)
        closed = [x for x in m["clips"] if x["clip_id"] == c["clip_id"]][0]["closed_mouth_frame"]
        # identity removal: the closed-mouth frame equals the template
        np.testing.assert_allclose(c["landmarks"][closed].reshape(68, 2), basis.template, atol=1e-5)
    evr = m["normalisation"]["explained_variance_ratio"]
    assert len(evr) == 6 and evr == sorted(evr, reverse=True) and sum(evr) < 1
    # the same clips are used by both recipes, with the same splits (same seed)
    m18 = load_manifest(out / "d2018")
    assert {c["clip_id"]: c["split"] for c in m["clips"]} == {c["clip_id"]: c["split"] for c in m18["clips"]}


def test_basis_reuse_and_test_only_split(built, corpus, tmp_path):
    out, _, _ = built
    # without a basis, a test-only 2020 dataset would fit its template/PCA on test clips: refused
    with pytest.raises(P.PrepareError, match="no clip in the training split"):
        P.prepare([corpus / "grid"], tmp_path / "leak", "eskimez2020", workers=1, split="0,0,1",
                  cache_dir=str(out / "cache"), progress=False)
    m = P.prepare([corpus / "grid"], tmp_path / "eval", "eskimez2020", workers=1, split="0,0,1",
                  basis=str(out / "d2020"), cache_dir=str(out / "cache"), progress=False)
    assert m["counts"]["test"] == len(GOOD) and m["counts"]["train"] == 0
    from tf_talkface.face.pca import PCABasis
    a, b = PCABasis.load(out / "d2020"), PCABasis.load(tmp_path / "eval")
    np.testing.assert_allclose(a.components, b.components)


def test_rerun_resumes_from_the_landmark_cache(built, corpus, tmp_path, monkeypatch):
    out, m18, _ = built

    def no_extraction(cfg):
        raise AssertionError("landmarks extracted again instead of read from the cache")

    monkeypatch.setattr(P, "_extractor", no_extraction)  # workers=1: this process
    m = P.prepare([corpus / "grid"], tmp_path / "again", "eskimez2018", workers=1,
                  cache_dir=str(out / "cache"), progress=False)
    first = {c["clip_id"]: c for c in m18["clips"]}
    assert {c["clip_id"] for c in m["clips"]} == {f"grid/s1/{g}" for g in GOOD}
    for c in m["clips"]:
        assert c["num_frames"] == first[c["clip_id"]]["num_frames"]


def test_one_recipe_fills_the_cache_the_other_reuses(corpus, tmp_path, monkeypatch):
    """Extraction counted in-process: the 2018 build extracts each video once, a rerun and the
    2020 build over the same videos extract nothing."""
    real, calls = P._extractor, []

    def counting(cfg):
        ex = real(cfg)

        class Counting:
            def extract(self, path):
                calls.append(path)
                return ex.extract(path)
        return Counting()

    monkeypatch.setattr(P, "_extractor", counting)
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.mp4").symlink_to(corpus / "grid" / "s1" / f"{GOOD[0]}.mp4")
    cache = str(tmp_path / "cache")
    P.prepare([one], tmp_path / "d18", "eskimez2018", workers=1, cache_dir=cache, progress=False)
    assert len(calls) == 1
    P.prepare([one], tmp_path / "d18b", "eskimez2018", workers=1, cache_dir=cache, progress=False)
    P.prepare([one], tmp_path / "d20", "eskimez2020", workers=1, cache_dir=cache, progress=False)
    assert len(calls) == 1
    P.prepare([one], tmp_path / "d18c", "eskimez2018", workers=1, cache_dir="none", progress=False)
    assert len(calls) == 2  # without the cache it does extract (the counter counts)


def test_normalisation_is_fitted_on_the_training_split_only(built):
    """No leakage: the 2020 PCA mean is the mean of the training clips' normalised frames (not
    of all clips'), the template the Procrustes mean of the training clips' closed-mouth frames;
    the 2018 feature statistics are the training clips'."""
    from tf_talkface.face.normalize import generalized_procrustes_mean
    from tf_talkface.face.pca import PCABasis

    out, m18, m20 = built
    d = out / "d2020"
    spec = RecordSpec.from_manifest(m20)
    by_split = {s: list(iter_clips(shard_paths(d, m20, s), spec)) for s in ("train", "val", "test")}
    assert all(by_split.values())
    basis = PCABasis.load(d)
    frames = {s: np.concatenate([c["landmarks"].reshape(len(c["landmarks"]), -1) for c in cs])
              for s, cs in by_split.items()}
    np.testing.assert_allclose(basis.mean, frames["train"].mean(0), atol=1e-5)
    everything = np.concatenate(list(frames.values())).mean(0)
    assert np.abs(basis.mean - everything).max() > 1e-4  # the test could tell the difference
    from tf_talkface.config import recipe
    from tf_talkface.face.normalize import closed_mouth_frame, procrustes_align

    z = recipe("eskimez2020").mouth_z_thresh

    def closed(cs):
        raws = [c["landmarks_raw"].reshape(-1, 68, 2).astype(np.float64) for c in cs]
        return np.stack([r[closed_mouth_frame(procrustes_align(r), z)] for r in raws])

    np.testing.assert_allclose(basis.template, generalized_procrustes_mean(closed(by_split["train"])),
                               atol=1e-4)
    every = generalized_procrustes_mean(closed([c for cs in by_split.values() for c in cs]))
    assert np.abs(basis.template - every).max() > 1e-5
    spec18 = RecordSpec.from_manifest(m18)
    train18 = list(iter_clips(shard_paths(out / "d2018", m18, "train"), spec18))
    mean18 = np.concatenate([c["features"] for c in train18]).mean(0)
    np.testing.assert_allclose(m18["feature_stats"]["features"]["mean"], mean18, atol=1e-4)


def test_killed_write_leaves_no_manifest_and_no_partial_shard(built, corpus, tmp_path, monkeypatch):
    out, _, _ = built
    from tf_talkface.data import records
    real = records.serialize_clip
    calls = {"n": 0}

    def dying(rec):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # like Ctrl-C mid-write
        return real(rec)

    monkeypatch.setattr(records, "serialize_clip", dying)
    with pytest.raises(KeyboardInterrupt):
        P.prepare([corpus / "grid"], tmp_path / "ds", "eskimez2018", workers=1,
                  cache_dir=str(out / "cache"), progress=False)
    assert not (tmp_path / "ds" / "manifest.json").exists()
    assert not list((tmp_path / "ds").glob("*.tmp"))
    monkeypatch.setattr(records, "serialize_clip", real)
    m = P.prepare([corpus / "grid"], tmp_path / "ds", "eskimez2018", workers=1,
                  cache_dir=str(out / "cache"), progress=False)
    assert load_manifest(tmp_path / "ds")["counts"]["train"] == m["counts"]["train"]


def test_assign_splits_is_deterministic_and_by_speaker():
    keys = [f"c{i}" for i in range(100)]
    a = P.assign_splits(keys, (0.8, 0.1, 0.1), seed=1)
    assert a == P.assign_splits(list(reversed(keys)), (0.8, 0.1, 0.1), seed=1)
    assert [sum(v == s for v in a.values()) for s in ("train", "val", "test")] == [80, 10, 10]
    assert a != P.assign_splits(keys, (0.8, 0.1, 0.1), seed=2)
    assert set(P.assign_splits(keys, (0, 0, 1), seed=0).values()) == {"test"}
    few = P.assign_splits(["s1", "s2", "s3"], (0.8, 0.1, 0.1), seed=0)
    assert sorted(few.values()) == ["test", "train", "val"]


def test_cli_exit_codes(tmp_path, corpus):
    run = lambda *a: subprocess.run([sys.executable, "-m", "tf_talkface.prepare", *map(str, a)],
                                    capture_output=True, text=True)
    r = run("--out", tmp_path / "x", "--videos", tmp_path / "nope")
    assert r.returncode == 2 and "not a folder" in r.stderr
    r = run("--out", tmp_path / "x", "--videos", corpus / "grid", "--split", "0.5,0.5")
    assert r.returncode == 2 and "--split" in r.stderr
    only_bad = tmp_path / "onlybad"
    only_bad.mkdir()
    (only_bad / "a.mp4").write_bytes(b"garbage" * 100)
    r = run("--out", tmp_path / "y", "--videos", only_bad, "--workers", "1", "--quiet",
            "--cache-dir", "none")
    assert r.returncode == 1 and "no usable clip" in r.stderr


def test_split_by_speaker_keeps_each_speaker_in_one_split(built, corpus, tmp_path):
    out, _, _ = built
    m = P.prepare([corpus / "grid", corpus / "bad"], tmp_path / "spk", "eskimez2018", workers=1,
                  split="0.5,0.5,0", split_by="speaker", cache_dir=str(out / "cache"), progress=False)
    by_speaker = {}
    for c in m["clips"]:
        by_speaker.setdefault(c["speaker"], set()).add(c["split"])
    assert set(by_speaker) == {"s1", "s9"}
    assert all(len(s) == 1 for s in by_speaker.values())
    assert {next(iter(s)) for s in by_speaker.values()} == {"train", "val"}


# ----------------------------------------------------------------- issue 12 C8: untested features


def test_audio_one_frame_off_is_trimmed_or_padded_more_is_skipped(data_dir, landmark_cache,
                                                                  tmp_path):
    """A clip's sound may be up to one video frame (40 ms) longer or shorter than its picture:
    trimmed or zero-padded to the frame count, the difference recorded as ``frame_adjust``; two
    frames off is skipped with a reason. Built from one real GRID clip (75 frames, 2.978 s of
    audio = 74.45 frames at 44.1 kHz: the original itself is one frame short) by re-muxing its
    untouched video with lossless PCM audio padded or cut (exact lengths, no AAC framing)."""
    from tf_talkface.audio.io import load_audio

    src = data_dir / "grid" / "s1" / "bbas1s.mp4"
    d = tmp_path / "odd" / "s1"
    d.mkdir(parents=True)
    (d / "orig.mp4").symlink_to(src)
    for name, af in (("plus1", "apad=pad_dur=0.06"),    # 75.95 frames -> +1: trimmed
                     ("plus2", "apad=pad_dur=0.10"),    # 76.95 frames -> +2: skipped
                     ("minus2", "atrim=end=2.93")):     # 73.25 frames -> -2: skipped
        _ff("-i", src, "-map", "0:v", "-map", "0:a", "-c:v", "copy", "-af", af,
            "-c:a", "pcm_s16le", d / f"{name}.mkv")
    hop, n = 1764, 75
    decoded = {k: load_audio(d / f, 44100) for k, f in (("orig", "orig.mp4"), ("plus1", "plus1.mkv"))}
    assert round(len(decoded["orig"]) / hop) == n - 1 and round(len(decoded["plus1"]) / hop) == n + 1

    out = tmp_path / "ds"
    m = P.prepare([tmp_path / "odd"], out, "eskimez2018", workers=2, split="1,0,0",
                  cache_dir=str(landmark_cache), progress=False)
    clips = {c["source"]: c for c in m["clips"]}
    assert set(clips) == {"odd/s1/orig.mp4", "odd/s1/plus1.mkv"}
    assert clips["odd/s1/orig.mp4"]["frame_adjust"] == -1
    assert clips["odd/s1/plus1.mkv"]["frame_adjust"] == 1
    assert all(c["num_frames"] == n for c in clips.values())
    reasons = {s["source"]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"odd/s1/plus2.mkv", "odd/s1/minus2.mkv"}
    assert "audio is 76.95 frames long, video 75 frames (more than 1 apart)" in reasons["odd/s1/plus2.mkv"]
    assert "audio is 73.25 frames long, video 75 frames (more than 1 apart)" in reasons["odd/s1/minus2.mkv"]

    stored = {c["source"]: c for c in iter_clips(shard_paths(out, load_manifest(out), "train"),
                                                 RecordSpec.from_manifest(m))}
    q = 1.0 / 32767  # the records hold 16-bit audio
    # one frame short: the whole sound, then zeros up to 75 frames
    a, y = stored["odd/s1/orig.mp4"]["audio"], decoded["orig"]
    assert a.shape == (n * hop,) and len(y) < n * hop
    np.testing.assert_allclose(a[:len(y)], y, atol=q)
    assert not a[len(y):].any()
    # one frame long: the first 75 frames of the sound, the rest dropped
    a, y = stored["odd/s1/plus1.mkv"]["audio"], decoded["plus1"]
    assert a.shape == (n * hop,) and len(y) > n * hop
    np.testing.assert_allclose(a, y[:n * hop], atol=q)
    # features: one row per video frame, from the adjusted audio
    assert stored["odd/s1/plus1.mkv"]["features"].shape == (n, 128)


def _transfer(aligned: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """The 2018 expression transfer written out (reference.md): the first frame's full-affine
    least-squares fit onto the mean shape gives per-axis scales; frame t = ms + scale * (x_t - x_0)."""
    x0 = np.hstack([aligned[0], np.ones((68, 1))])
    sol, *_ = np.linalg.lstsq(x0, ms, rcond=None)  # (3, 2): x0 @ sol ~ ms
    scale = np.hypot(sol[0], sol[1])  # |s_x|, |s_y| (columns: the x and y outputs)
    return ms[None] + (aligned - aligned[:1]) * scale


def test_mean_shape_option_replaces_the_identity(data_dir, landmark_cache, tmp_path, capsys):
    """``prepare --mean-shape FILE`` (2018 recipe): every clip's first frame becomes that mean
    shape (eye-aligned, /600) and the later frames keep the clip's own motion, scaled per axis by
    the fit of its first frame onto the mean shape. A different mean shape (mouth 30 % taller,
    face 10 % wider) changes the landmarks exactly so; no option = the original's mean shape."""
    from tf_talkface.face.normalize import align_eye_points, prepare_mean_shape

    videos = tmp_path / "v" / "s1"
    videos.mkdir(parents=True)
    for c in ("bbaf2n", "bbal6n"):
        (videos / f"{c}.mp4").symlink_to(data_dir / "grid" / "s1" / f"{c}.mp4")
    ref = np.load(data_dir / "reference" / "eskimez2018" / "mean_shape.npy").reshape(68, 2)
    other = ref.astype(np.float64).copy()
    mouth = other[48:68]
    mouth[:, 1] = mouth[:, 1].mean() + 1.3 * (mouth[:, 1] - mouth[:, 1].mean())
    other[:, 0] = other[:, 0].mean() + 1.1 * (other[:, 0] - other[:, 0].mean())
    files = {"ref": tmp_path / "ref.npy", "other": tmp_path / "other.npy"}
    np.save(files["ref"], ref)
    np.save(files["other"], other)

    def build(name, *extra):
        rc = P.main(["--videos", str(tmp_path / "v"), "--out", str(tmp_path / name), "--recipe",
                     "eskimez2018", "--split", "1,0,0", "--workers", "1", "--quiet",
                     "--cache-dir", str(landmark_cache), *extra])
        assert rc == 0, capsys.readouterr().err
        man = load_manifest(tmp_path / name)
        clips = iter_clips(shard_paths(tmp_path / name, man, "train"), RecordSpec.from_manifest(man))
        return man, {c["clip_id"]: c for c in clips}

    m_ref, ref_clips = build("ref", "--mean-shape", str(files["ref"]))
    m_other, other_clips = build("other", "--mean-shape", str(files["other"]))
    m_default, default_clips = build("default")
    assert m_other["normalisation"]["mean_shape_source"] == str(files["other"])
    assert m_default["normalisation"]["mean_shape_source"] == "eskimez2018 original mean_shape.npy"
    assert m_default["normalisation"]["mean_shape_aligned"] == m_ref["normalisation"]["mean_shape_aligned"]
    for name, man, clips, ms in (("ref", m_ref, ref_clips, ref), ("other", m_other, other_clips, other)):
        ms_al = prepare_mean_shape(ms)
        np.testing.assert_allclose(man["normalisation"]["mean_shape_aligned"], ms_al, atol=1e-5)
        for cid, c in clips.items():
            raw = c["landmarks_raw"].reshape(-1, 68, 2).astype(np.float64)
            got = c["landmarks"].reshape(-1, 68, 2)
            np.testing.assert_allclose(got[0], ms_al / 600, atol=1e-6, err_msg=(name, cid))
            want = _transfer(align_eye_points(raw).astype(np.float64), ms_al) / 600
            np.testing.assert_allclose(got, want, atol=2e-5, err_msg=(name, cid))
    for cid in ref_clips:
        np.testing.assert_array_equal(default_clips[cid]["landmarks"], ref_clips[cid]["landmarks"])
        a = ref_clips[cid]["landmarks"].reshape(-1, 68, 2)
        b = other_clips[cid]["landmarks"].reshape(-1, 68, 2)
        # the identity changed: the first frame's mouth is 1.3 / 1.1 times as tall (the eye
        # alignment undoes the 10 % wider face, so it shrinks the whole shape by 1 / 1.1) ...
        h = lambda x: np.ptp(x[0, 48:68, 1])  # noqa: E731
        assert h(b) / h(a) == pytest.approx(1.3 / 1.1, rel=0.02)
        # ... and the motion is the same up to one scale per axis: unchanged across (the wider
        # face is aligned away), 1 / 1.1 vertically (the aligned shape is 1.1 times flatter;
        # measured 0.911: the taller mouth counts for little in the fit of all 68 points)
        ma, mb = a[1:] - a[:1], b[1:] - b[:1]
        k = [(mb[..., i] * ma[..., i]).sum() / (ma[..., i] ** 2).sum() for i in (0, 1)]
        for i in (0, 1):
            np.testing.assert_allclose(mb[..., i], k[i] * ma[..., i], atol=1e-5)
        assert k[0] == pytest.approx(1, abs=0.01) and k[1] == pytest.approx(1 / 1.1, abs=0.01), k
