"""tf_talkface.viz: rendering landmark sequences (painted / lines / 3d) to mp4 with sound.

Real-data tests use the ``data_dir`` fixture (skip when ../shared/data is absent): the dlib
landmarks of ``video/obama2s.mp4`` (60 frames, pixel units, the first 13 frames NaN: title card)
and that clip's AAC sound track. Videos are small (<= 384 px, <= 2.4 s).
"""
from __future__ import annotations

import re
import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from scipy.signal import correlate

from tf_talkface.audio.io import load_audio, media_info
from tf_talkface.face.topology import EDGES, INNER_LIP, LEFT_EYE, RIGHT_EYE
from tf_talkface.resources import ffmpeg_exe
from tf_talkface.viz import draw as D
from tf_talkface.viz import draw3d as D3
from tf_talkface.viz import painted as P
from tf_talkface.viz import render as R
from tf_talkface.viz import video_io as IO

SIZE = (256, 256)


@pytest.fixture(scope="module")
def obama(data_dir):
    """(60, 68, 2) float32 real dlib landmarks in pixels; frames 0-12 are NaN."""
    a = np.load(data_dir / "video" / "obama2s_landmarks_dlib.npy").astype(np.float32)
    assert a.shape == (60, 68, 2)
    return a


@pytest.fixture(scope="module")
def obama_valid(obama):
    ok = ~np.isnan(obama).any(axis=(1, 2))
    assert ok.sum() >= 40 and not ok[:13].any()
    return obama[ok]


def _streams(path) -> list[str]:
    """Kinds ("Video"/"Audio") of every stream of a media file, from ffmpeg's log."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = proc.stderr.decode("utf-8", "replace").split("Stream mapping:")[0]
    return re.findall(r"Stream #0:\d+[^:]*: (Video|Audio|Data|Subtitle):", text)


def _video_frames(path) -> tuple[list[np.ndarray], tuple[int, int]]:
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = gen.__next__()
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
    return frames, (w, h)


def _near(img: np.ndarray, rgb, tol: float = 30.0) -> np.ndarray:
    return np.linalg.norm(img.astype(np.float32) - np.asarray(rgb, np.float32), axis=-1) < tol


def _drawn(img: np.ndarray) -> np.ndarray:
    """Pixels of a lines-style image that are not the white background."""
    return np.any(img < 250, axis=-1)


# ------------------------------------------------------------------------- full videos


def test_render_video_obama_with_waveform_audio(obama, data_dir, tmp_path):
    src = data_dir / "video" / "obama2s.mp4"
    y = load_audio(src, 16000)
    out = R.render_video(obama, tmp_path / "obama.mp4", audio=y, sample_rate=16000, size=SIZE)
    assert out == tmp_path / "obama.mp4"
    assert sorted(_streams(out)) == ["Audio", "Video"]  # exactly one of each
    info = media_info(out)
    assert info["video_fps"] == 25.0 and info["audio_sample_rate"] == 16000
    n, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n == len(obama) == 60  # every landmark frame is a video frame (2.4 s at 25 fps)
    assert abs(secs - 60 / 25) < 0.05
    # the sound track: same length as the source (not cut, not padded), starting at t = 0
    back = load_audio(out, 16000)
    assert abs(len(back) / 16000 - len(y) / 16000) < 0.1
    m = min(len(back), len(y))
    xc = correlate(back[:m], y[:m], mode="full", method="fft")
    lag = int(np.argmax(xc)) - (m - 1)
    assert abs(lag) <= 16  # <= 1 ms
    # the 13 NaN frames are neutral frames; the face frames have skin
    frames, size = _video_frames(out)
    assert size == SIZE and len(frames) == 60
    assert _near(frames[0], P.PALETTE["background"], 12).mean() > 0.9
    assert _near(frames[0], P.PALETTE["skin"], 20).mean() < 0.01
    assert _near(frames[40], P.PALETTE["skin"], 20).mean() > 0.15


def test_render_video_audio_from_file_lines(obama_valid, data_dir, tmp_path):
    src = data_dir / "video" / "obama2s.mp4"  # a video file: its AAC track is used
    lm = obama_valid[:25]
    out = R.render_video(lm, tmp_path / "sub" / "lines.mp4", audio=src, style="lines",
                         size=(192, 160))
    assert sorted(_streams(out)) == ["Audio", "Video"]
    info = media_info(out)
    assert info["audio_sample_rate"] == 44100 and info["video_fps"] == 25.0
    n, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n == 25
    src_s = len(load_audio(src, 16000)) / 16000
    assert abs(len(load_audio(out, 16000)) / 16000 - src_s) < 0.1  # longer than the 1 s video
    frames, size = _video_frames(out)
    assert size == (192, 160) and frames[0].shape == (160, 192, 3)
    assert set(p.name for p in out.parent.iterdir()) == {"lines.mp4"}  # no temp files left


# ------------------------------------------------------------------------------ painted


def test_painted_mouth_opening_skin_and_determinism(obama):
    ok = np.flatnonzero(~np.isnan(obama).any(axis=(1, 2)))
    gap = np.linalg.norm(obama[ok, 62] - obama[ok, 66], axis=-1)
    f_open, f_closed = int(ok[np.argmax(gap)]), int(ok[np.argmin(gap)])
    assert gap.max() > 40 and gap.min() < 1  # the clip really opens and closes its mouth
    view = D.fit_view([obama], SIZE, style="painted")
    frames = list(R.render_frames(obama, "painted", SIZE, view=view))
    assert all(a.tobytes() == b.tobytes()  # the default view is this one
               for a, b in zip(frames, R.render_frames(obama, "painted", SIZE)))
    assert len(frames) == 60
    assert all(f.dtype == np.uint8 and f.shape == (256, 256, 3) for f in frames)

    def dark_mouth_pixels(f):
        mask = np.zeros(SIZE[::-1], np.uint8)
        cv2.fillPoly(mask, [np.round(view.to_pixels(obama[f][INNER_LIP])).astype(np.int32)], 1)
        return int((_near(frames[f], P.PALETTE["mouth"], 40) & (mask > 0)).sum())

    n_open, n_closed = dark_mouth_pixels(f_open), dark_mouth_pixels(f_closed)
    assert n_open > 100 and n_open > 5 * max(n_closed, 1), (n_open, n_closed)
    for f in (f_open, f_closed):
        assert _near(frames[f], P.PALETTE["skin"], 20).mean() > 0.15
        for eye in (RIGHT_EYE, LEFT_EYE):  # eyes are drawn over the skin
            mask = np.zeros(SIZE[::-1], np.uint8)
            cv2.fillPoly(mask, [np.round(view.to_pixels(obama[f][eye])).astype(np.int32)], 1)
            assert mask.sum() > 20
            assert _near(frames[f], P.PALETTE["skin"], 20)[mask > 0].mean() < 0.25  # ~1 if not drawn
        assert _near(frames[f], P.PALETTE["lips"], 25).sum() > 50
    again = list(R.render_frames(obama, "painted", SIZE, view=view))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(frames, again))  # deterministic
    # the painted head (forehead included) fits in the frame: the top rows are background
    for f in ok:
        assert _near(frames[f][:12], P.PALETTE["background"], 3).all()


def test_painted_normalised_2020_units(obama_valid):
    # the same faces mapped to the 2020 recipe's units (centred near 0, range ~0.3) render
    # the same picture: the view is fitted, whatever the units
    lm = obama_valid[:5]
    c = np.nanmean(lm, axis=(0, 1))
    small = ((lm - c) * (0.33 / np.ptp(lm[..., 1]))).astype(np.float32)
    a = list(R.render_frames(lm, "painted", SIZE))
    b = list(R.render_frames(small, "painted", SIZE))
    for x, y in zip(a, b):  # equal up to float rounding of a few anti-aliased edge pixels
        assert (np.abs(x.astype(int) - y.astype(int)).max(axis=-1) > 30).mean() < 0.001


# -------------------------------------------------------------------------------- lines


def test_lines_within_view_and_fills_it(obama):
    margin = 0.1
    frames = list(R.render_frames(obama, "lines", SIZE))
    ok = ~np.isnan(obama).any(axis=(1, 2))
    pad = 4  # line half-width + point radius + anti-aliasing, in pixels
    lo, hi = margin * 256 - pad, (1 - margin) * 256 + pad
    union = np.zeros((256, 256), bool)
    for f in np.flatnonzero(ok):
        ys, xs = np.nonzero(_drawn(frames[f]))
        assert len(xs) > 500
        assert xs.min() >= lo and xs.max() <= hi and ys.min() >= lo and ys.max() <= hi, f
        union |= _drawn(frames[f])
        # red mouth, black rest
        assert _near(frames[f], D.LINES_MOUTH_COLOR, 60).sum() > 30
    ys, xs = np.nonzero(union)
    # the limiting dimension spans the view's 80 %
    assert max(np.ptp(xs), np.ptp(ys)) >= (1 - 2 * margin) * 256 - 2
    # NaN frames: white with a small grey note, no face
    assert _drawn(frames[0]).mean() < 0.05


def test_one_view_for_the_whole_sequence(obama_valid):
    a = obama_valid[:8]
    shift = np.array([60.0, -25.0], np.float32)
    seq = np.concatenate([a, a + shift])
    view = D.fit_view([seq], SIZE)
    frames = list(R.render_frames(seq, "lines", SIZE))
    for k in range(len(a)):
        f0, f1 = frames[k], frames[k + len(a)]
        assert f0.tobytes() != f1.tobytes()
        c0 = np.argwhere(_drawn(f0)).mean(axis=0)  # (row, col)
        c1 = np.argwhere(_drawn(f1)).mean(axis=0)
        assert np.allclose(c1 - c0, view.scale * shift[::-1], atol=1.0), (c1 - c0)
    # the fit itself is translation invariant: the shifted half alone looks like the first half
    alone = list(R.render_frames(a + shift, "lines", SIZE))
    assert all(x.tobytes() == y.tobytes()
               for x, y in zip(alone, R.render_frames(a, "lines", SIZE)))


def test_fit_view(obama):
    v = D.fit_view([obama], (300, 200), margin=0.1)
    px = v.to_pixels(obama[13:])
    assert px.shape == (47, 68, 2)
    lo, hi = px.reshape(-1, 2).min(0), px.reshape(-1, 2).max(0)
    # height-limited: 80 % of 200 px, centred; width within the frame
    assert np.isclose(hi[1] - lo[1], 160) and np.isclose((lo[1] + hi[1]) / 2, 100)
    assert np.isclose((lo[0] + hi[0]) / 2, 150) and hi[0] - lo[0] < 240
    with pytest.raises(ValueError, match="no frame without NaN"):
        D.fit_view([obama[:13]])


# ----------------------------------------------------------------------------------- 3d


def test_3d_rotates_and_needs_3d(obama_valid):
    a = obama_valid[:30].astype(np.float64)
    c = a.mean(axis=(0, 1))
    r = np.ptp(a[..., 0])
    z = 0.25 * r - ((a[..., 0] - c[0]) ** 2 + (a[..., 1] - c[1]) ** 2) / r  # nose protrudes
    a3 = np.concatenate([a, z[..., None]], axis=-1).astype(np.float32)
    p = a3[0]
    f0 = D3.draw_3d(p, 0.0, (256, 192))
    assert f0.shape == (192, 256, 3) and f0.dtype == np.uint8
    assert _drawn(f0).sum() > 300
    assert D3.draw_3d(p, 0.0, (256, 192)).tobytes() == f0.tobytes()  # reused figure: same pixels
    f30 = D3.draw_3d(p, 30.0, (256, 192))
    assert (np.abs(f30.astype(int) - f0.astype(int)).max(axis=-1) > 60).sum() > 200
    frames = list(R.render_frames(a3, "3d", (256, 192)))
    assert len(frames) == 30 and all(f.shape == (192, 256, 3) for f in frames)
    assert D3.azimuth_at(0) == 0.0 and np.isclose(D3.azimuth_at(25), 30.0)  # 1 s = quarter sweep
    assert frames[0].tobytes() != frames[25].tobytes()
    with pytest.raises(ValueError, match="3D"):
        R.render_frames(a, "3d")
    with pytest.raises(ValueError, match=r"\(68, 3\)"):
        D3.draw_3d(a[0], 0.0)


# -------------------------------------------------------------------------- side by side


def test_side_by_side(obama_valid, tmp_path):
    gt = obama_valid[:20]
    pred = gt.copy()
    pred[:, 48:68, 1] += 5.0  # a different mouth
    out = R.render_side_by_side([("ground truth", gt), ("predicted", pred)],
                                tmp_path / "sbs.mp4", size=(192, 192), frame_numbers=True)
    frames, size = _video_frames(out)
    assert size == (2 * 192, 192) and len(frames) == 20
    assert _streams(out) == ["Video"]
    left, right = frames[0][:, :192], frames[0][:, 192:]
    assert _drawn(left[:20]).sum() > 20 and _drawn(right[:20]).sum() > 20  # titles at the top
    assert np.abs(left.astype(int) - right.astype(int)).max() > 100  # not the same drawing

    three = R.render_side_by_side([("a", gt), ("b", gt), ("c", gt)], tmp_path / "three.mp4",
                                  style="painted", size=(128, 128))
    assert _video_frames(three)[1] == (3 * 128, 128)

    with pytest.raises(ValueError, match=r"'ground truth': 20.*'predicted': 19"):
        R.render_side_by_side([("ground truth", gt), ("predicted", pred[:19])],
                              tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


# ------------------------------------------------------------------ png, write_video, errors


def test_save_frame_png(obama, tmp_path):
    path = R.save_frame_png(obama, 32, tmp_path / "f.png", style="painted", size=SIZE)
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    frames = list(R.render_frames(obama, "painted", SIZE))
    assert img.tobytes() == frames[32].tobytes()  # the video's own view, not a per-frame fit
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
    with pytest.raises(IndexError, match="60 frames"):
        R.save_frame_png(obama, 60, tmp_path / "g.png")


def _frames_then_fail(n: int):
    for i in range(n):
        yield np.full((64, 64, 3), i * 20, np.uint8)
    raise RuntimeError("renderer failed")


def test_write_video_is_atomic(tmp_path):
    dest = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError, match="renderer failed"):
        IO.write_video(dest, _frames_then_fail(5))
    assert list(tmp_path.iterdir()) == []
    dest.write_bytes(b"previous")
    bad = [np.zeros((64, 64, 3), np.uint8)] * 3 + [np.zeros((32, 64, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 3"):
        IO.write_video(dest, bad, audio=np.zeros(8000, np.float32), sample_rate=8000)
    assert dest.read_bytes() == b"previous"  # an existing file is left as it was
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_write_video_waveform_8k_and_odd_size(data_dir, tmp_path):
    y = load_audio(data_dir / "speech" / "obama.wav", 8000)[:8000]  # 1 s at the 2020 rate
    frames = [np.full((75, 101, 3), 10 * i, np.uint8) for i in range(25)]
    out = IO.write_video(tmp_path / "w.mp4", iter(frames), audio=y, sample_rate=8000)
    info = media_info(out)
    assert info["audio_sample_rate"] == 8000 and info["audio_codec"] == "aac"
    got, size = _video_frames(out)
    assert size == (102, 76) and len(got) == 25  # padded to even, nothing dropped
    assert abs(int(got[20][30, 50].mean()) - 200) < 6  # frame order kept
    assert abs(len(load_audio(out, 8000)) - 8000) < 800


def test_bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    good = rng.random((3, 68, 2)).astype(np.float32)
    for bad in (rng.random((3, 67, 2)), rng.random((3, 68, 4)), rng.random((68, 2)),
                np.zeros((0, 68, 2))):
        with pytest.raises(ValueError, match="frames|shape"):
            R.render_frames(bad)
    with pytest.raises(ValueError, match="painted, lines, 3d"):
        R.render_frames(good, style="cartoon")
    with pytest.raises(ValueError, match=r"\.mp4"):
        IO.write_video(tmp_path / "x.avi", [np.zeros((32, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="sample_rate"):
        IO.write_video(tmp_path / "x.mp4", [np.zeros((32, 32, 3), np.uint8)], audio=np.zeros(100))
    with pytest.raises(ValueError, match="no frames"):
        IO.write_video(tmp_path / "x.mp4", [])
    assert list(tmp_path.iterdir()) == []


def test_one_edge_split_for_every_style():
    assert set(D.FACE_EDGES).isdisjoint(D.MOUTH_EDGES)
    assert sorted(D.FACE_EDGES + D.MOUTH_EDGES) == sorted(EDGES)
    assert len(D.MOUTH_EDGES) == 20 and all(48 <= i < 68 and 48 <= j < 68 for i, j in D.MOUTH_EDGES)


def test_write_png_is_atomic_and_checks_the_image(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[5:10, 5:20] = (255, 0, 0)
    out = IO.write_png(tmp_path / "sub" / "a.png", img)
    assert out == tmp_path / "sub" / "a.png"
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB), img)
    with pytest.raises(ValueError, match="uint8"):
        IO.write_png(tmp_path / "b.png", img.astype(np.float32))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "sub"]
