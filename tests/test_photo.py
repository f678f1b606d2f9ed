"""The talking photo (issue 13): photo loading and every bad input, the face mesh and warper
(against a per-triangle reference), motion (transfer invariance, smoothing, head motion, blinks,
energy), streaming == offline, determinism, paste-back, and on real photos: dlib finds the face
in every output frame, the dlib-measured mouth opening follows the driving landmarks, and with
a still head the upper face stays close to the photo."""
from __future__ import annotations

import numpy as np
import pytest

from tf_talkface.animate import animator as A
from tf_talkface.animate import compose, motion
from tf_talkface.animate import photo as P
from tf_talkface.animate import photo_warp as W
from tf_talkface.assets import EXAMPLE_PHOTO, EXAMPLE_SPEECH, resolve
from tf_talkface.face.normalize import inner_lip_gap

cv2 = pytest.importorskip("cv2")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def example():
    """The bundled example portrait, loaded (512x640, mouth open in a smile)."""
    return P.load_photo(EXAMPLE_PHOTO)


@pytest.fixture(scope="module")
def example_rgb():
    return P.read_image(EXAMPLE_PHOTO)


def _synthetic_landmarks(neutral: np.ndarray, n: int = 60, seed: int = 0) -> np.ndarray:
    """A model-like sequence: the neutral frame with the jaw/lower lip opening and closing
    (a 3-Hz-ish syllable rhythm with random amplitudes), in the neutral's own units."""
    rng = np.random.default_rng(seed)
    scale = float(np.ptp(neutral[:, 1]))
    open_ = np.clip(np.sin(np.arange(n) * 2 * np.pi / 8) * rng.uniform(0.5, 1.0, n), 0, None)
    lm = np.repeat(neutral[None].astype(np.float64), n, axis=0)
    for idx, w in ((list(range(65, 68)), 1.0), (list(range(55, 60)), 1.0), ([7, 8, 9], 0.6),
                   ([6, 10], 0.4)):
        lm[:, idx, 1] += (0.04 * scale * w * open_)[:, None]
    return lm.astype(np.float32)


@pytest.fixture(scope="module")
def neutral():
    """A closed-mouth neutral in arbitrary model units (the 2018 mean shape idea: a face on a
    unit-ish canvas)."""
    ph = P.load_photo(EXAMPLE_PHOTO)
    pts, _ = A.close_mouth(ph.points)
    return ((pts - pts.mean(axis=0)) / 300.0 + 0.5).astype(np.float32)


def _write(path, img):
    assert cv2.imwrite(str(path), img)
    return path


# ---------------------------------------------------------------------------- photo input


def test_output_size_rules():
    assert P.output_size(910, 1137) == (910, 1136)       # within 1080p in either orientation
    assert P.output_size(1920, 1080) == (1920, 1080)
    assert P.output_size(2160, 3840) == (1080, 1920)
    assert P.output_size(4000, 3000) == (1440, 1080)
    assert P.output_size(1080, 1920) == (1080, 1920)
    assert P.output_size(491, 1137, 1080) == (490, 1136)
    assert P.output_size(910, 1137, 512) == (512, 640)
    assert P.output_size(360, 288) == (360, 288)          # never upscaled
    assert P.output_size(361, 289) == (360, 288)          # even
    assert P.output_size(1920, 1080, 512) == (910, 512)


def test_example_photo_loads(example):
    assert example.size == (512, 640) and example.image.dtype == np.uint8
    assert example.n_faces == 1 and example.points.shape == (68, 2)
    assert A.close_mouth(example.points)[1], "the example portrait smiles with an open mouth"


def test_assets_shortcut_and_size():
    assert resolve("example", "speech") == EXAMPLE_SPEECH
    assert resolve("example", "photo") == EXAMPLE_PHOTO
    assert resolve("x.wav", "speech") == "x.wav" and resolve(None, "photo") is None
    total = sum(f.stat().st_size for f in EXAMPLE_PHOTO.parent.iterdir() if f.is_file())
    assert total < 500_000
    readme = (EXAMPLE_PHOTO.parent / "README.md").read_text()
    assert "CC BY 4.0" in readme and "public domain" in readme


@pytest.mark.parametrize("kind", ["gray", "rgba", "gray_alpha", "16bit", "16bit_gray"])
def test_image_variants_decode_to_rgb8(kind, example_rgb, tmp_path):
    bgr = cv2.cvtColor(example_rgb, cv2.COLOR_RGB2BGR)
    if kind == "gray":
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    elif kind == "rgba":
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        img[:40, :40, 3] = 0                     # a transparent corner
    elif kind == "gray_alpha":
        g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        img = np.dstack([g, np.full_like(g, 255)])
        img[:40, :40, 1] = 0
    elif kind == "16bit":
        img = bgr.astype(np.uint16) * 257
    else:
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    f = tmp_path / f"{kind}.png"
    if kind == "gray_alpha":  # OpenCV cannot write 2-channel PNGs; Pillow can
        from PIL import Image

        Image.fromarray(img, "LA").save(f)
    else:
        _write(f, img)
    rgb = P.read_image(f)
    assert rgb.dtype == np.uint8 and rgb.shape == example_rgb.shape
    if kind in ("rgba", "gray_alpha"):
        assert (rgb[:40, :40] == 255).all()      # transparent -> white
        inner = rgb[100:, 100:].astype(int)
    else:
        inner = rgb.astype(int)
    ref = example_rgb[100:, 100:] if kind in ("rgba", "gray_alpha") else example_rgb
    if kind.startswith("gray") or kind == "16bit_gray":
        ref = np.repeat(cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    assert np.abs(inner - ref.astype(int)).max() <= 1
    ph = P.load_photo(f)
    assert ph.n_faces == 1


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation, example_rgb, tmp_path):
    from PIL import Image

    stored = {3: np.rot90(example_rgb, 2), 6: np.rot90(example_rgb, 1),
              8: np.rot90(example_rgb, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    f = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(f, quality=95, exif=exif)
    rgb = P.read_image(f)
    assert rgb.shape == example_rgb.shape
    assert np.abs(rgb.astype(int) - example_rgb.astype(int)).mean() < 3
    ph = P.load_photo(f)
    eyes = ph.points[36:48, 1].mean()
    assert eyes < ph.points[48:68, 1].mean(), "face upright: eyes above the mouth"


def test_big_jpeg_is_reduced_while_decoding(example_rgb, tmp_path):
    big = cv2.resize(example_rgb, (2560 * 2, 3200 * 2), interpolation=cv2.INTER_LINEAR)
    f = _write(tmp_path / "big.jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    rgb = P.read_image(f, max_side_needed=1080)
    assert rgb.shape[:2] == (3200, 2560)           # decoded at 1/2: still >= 2 x 1080
    ph = P.load_photo(f)
    assert ph.size == (1080, 1350) and ph.source_size == (2560, 3200)


def _err(path, **kw) -> str:
    with pytest.raises(P.PhotoError) as e:
        P.load_photo(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_bad_inputs_one_line_errors(example_rgb, tmp_path, monkeypatch):
    assert "file not found" in _err(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _err(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("this is not a picture\n" * 20)
    assert "not an image" in _err(tmp_path / "notes.jpg")
    (tmp_path / "trunc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    _err(tmp_path / "trunc.png")
    # no face: a landscape of noise and a flat image
    rng = np.random.default_rng(0)
    noise = _write(tmp_path / "noise.png", rng.integers(0, 255, (300, 400, 3), np.uint8))
    assert "no face" in _err(noise)
    # a face under 64 px
    small = cv2.resize(example_rgb, (80, 100), interpolation=cv2.INTER_AREA)
    canvas = np.full((400, 400, 3), 200, np.uint8)
    canvas[150:250, 160:240] = small
    f = _write(tmp_path / "small.png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    msg = _err(f)
    assert "too small" in msg or "no face" in msg
    # a huge image: a PNG header claiming 20000 x 20000 (nothing is decoded) ...
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                                        + chunk(b"IEND", b""))
    assert "too large" in _err(tmp_path / "bomb.png")
    # ... and a real one over a lowered limit
    monkeypatch.setattr(P, "MAX_PIXELS", 100_000)
    big = _write(tmp_path / "huge.png", cv2.cvtColor(example_rgb, cv2.COLOR_RGB2BGR))
    assert "too large" in _err(big)


def test_face_below_64px_is_refused(example_rgb, tmp_path):
    # face ~ 70 px wide at half scale: accepted by default; refused with a higher threshold
    small = cv2.resize(example_rgb, (256, 320), interpolation=cv2.INTER_AREA)
    f = _write(tmp_path / "s.png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    ph = P.load_photo(f)
    width = float(np.ptp(ph.points[:, 0]))
    assert width >= P.MIN_FACE_PX
    msg = _err(f, min_face=int(width) + 10)
    assert "too small" in msg and f"{width:.0f} px" in msg


def test_several_faces_largest_first_and_face_index(example_rgb, tmp_path):
    half = cv2.resize(example_rgb, (256, 320), interpolation=cv2.INTER_AREA)
    canvas = np.full((640, 512 + 256 + 20, 3), 230, np.uint8)
    canvas[:, :512] = example_rgb
    canvas[160:480, 532:788] = half
    f = _write(tmp_path / "two.png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    big = P.load_photo(f)
    assert big.n_faces == 2 and big.points[:, 0].mean() < 512 and big.notes
    other = P.load_photo(f, face_index=1)
    assert other.points[:, 0].mean() > 532
    assert "only 2 face(s)" in _err(f, face_index=2)


def test_crop_around_the_face(tmp_path, example):
    ph = P.load_photo(EXAMPLE_PHOTO, crop=P.DEFAULT_CROP)
    w, h = ph.size
    assert w == h and w % 2 == 0
    c = ph.points.mean(axis=0)
    assert 0.3 * w < c[0] < 0.7 * w and 0.3 * h < c[1] < 0.75 * h


# ---------------------------------------------------------------------------- mesh + warp


def _reference_warp(image, src, dst, tris):
    """Per-triangle cv2.warpAffine renderer (the usual approach), for comparison."""
    out = image.copy()
    h, w = image.shape[:2]
    for t in tris:
        s, d = src[t].astype(np.float32), dst[t].astype(np.float32)
        if np.allclose(s, d) or abs(np.cross(d[1] - d[0], d[2] - d[0])) < 0.5:
            continue
        m = cv2.getAffineTransform(s, d)
        warped = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, np.round(d * 16).astype(np.int32), 255, cv2.LINE_8, 4)
        out[mask > 0] = warped[mask > 0]
    return out


def test_mesh_topology(example):
    mesh = W.build_mesh(example.points, example.size)
    assert len(mesh.triangles) <= 254
    edges = {tuple(sorted((int(a), int(b)))) for t in mesh.triangles
             for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    assert all(tuple(sorted(e)) in edges for e in W.REQUIRED_EDGES)
    assert mesh.interior.sum() == 6 + 4 + 4          # mouth opening and the two eyes
    assert not mesh.folded(mesh.vertices, tol=-1e-6).any()
    closed, _ = A.close_mouth(example.points)
    assert not mesh.folded(mesh.with_face(closed)).any()


@pytest.mark.parametrize("use_numba", [True, False])
def test_dense_warp_matches_per_triangle_reference(example, use_numba):
    mesh = W.build_mesh(example.points, example.size)
    dst = mesh.vertices.copy()
    dst[[6, 7, 8, 9, 10]] += (0, 12)
    dst[55:60] += (0, 12)
    dst[65:68] += (0, 12)
    t = motion.HeadMotion.transform(np.array([2.0, 0.03, 0.02]), example.points)
    face = np.vstack([dst[:68], dst[mesh.ring]])
    face = face @ t[:, :2].T + t[:, 2]
    dst[:68], dst[mesh.ring] = face[:68], face[68:]
    warper = W.MeshWarper(example.image, mesh)
    warper.use_numba = use_numba
    ours = warper.warp(dst)
    ref = _reference_warp(example.image, mesh.vertices, dst, mesh.triangles)
    diff = np.abs(ours.astype(int) - ref.astype(int)).max(axis=2)
    assert diff.mean() < 0.3, diff.mean()
    assert (diff > 8).mean() < 0.003          # only pixels on triangle edges differ
    # nothing moved: a copy of the photo
    assert np.array_equal(warper.warp(mesh.vertices), example.image)


def test_mesh_on_real_photos(data_dir):
    photos = sorted((data_dir / "photos").glob("*.jpg"))
    assert len(photos) >= 4
    for f in photos:
        ph = P.load_photo(f, size=512)
        mesh = W.build_mesh(ph.points, ph.size)
        assert not mesh.folded(mesh.vertices, tol=-1e-6).any(), f


# ---------------------------------------------------------------------------- motion


def test_transfer_ignores_model_scale_offset_rotation(example, neutral):
    lm = _synthetic_landmarks(neutral, 30)
    rest, _ = A.close_mouth(example.points)
    a = motion.MotionTransfer(rest, neutral)(lm)
    th = np.deg2rad(20)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    tf = lambda x: 7.5 * x @ rot.T + (3.0, -40.0)  # noqa: E731
    b = motion.MotionTransfer(rest, tf(neutral))(tf(lm))
    np.testing.assert_allclose(a, b, atol=1e-3)          # pixels; float32 model coordinates
    # the neutral frame maps to the photo's rest points; upper face never moves
    np.testing.assert_allclose(motion.MotionTransfer(rest, neutral)(neutral[None])[0], rest,
                               atol=1e-9)
    np.testing.assert_allclose(a[:, 17:48], np.repeat(rest[None, 17:48], 30, axis=0), atol=1e-9)
    gap = A.mouth_opening(a)
    assert gap.max() > 5 and gap.min() >= -1e-9


def test_lip_gain_scales_the_opening(example, neutral):
    lm = _synthetic_landmarks(neutral, 20)
    rest, _ = A.close_mouth(example.points)
    g1 = A.mouth_opening(motion.MotionTransfer(rest, neutral, lip_gain=1.0)(lm))
    g3 = A.mouth_opening(motion.MotionTransfer(rest, neutral, lip_gain=3.0)(lm))
    np.testing.assert_allclose(g3, 3 * g1, rtol=1e-6, atol=1e-6)


def test_smoother_push_flush_equals_offline():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 5))
    for k in (0, 1, 2):
        s = motion.Smoother(k)
        out = []
        for i in range(0, 37, 4):
            out += s.push(list(x[i:i + 4]))
        out += s.flush()
        pad = np.concatenate([np.repeat(x[:1], k, 0), x, np.repeat(x[-1:], k, 0)])
        w = s.w
        ref = np.stack([np.tensordot(w, pad[t:t + 2 * k + 1], axes=1) for t in range(37)])
        np.testing.assert_allclose(np.stack(out), ref, atol=1e-12)


def test_energy_meter_chunking_and_levels():
    rng = np.random.default_rng(2)
    sr = 16000
    y = np.concatenate([np.zeros(sr // 2), 0.1 * rng.standard_normal(sr), np.zeros(333)])
    whole = motion.frame_energy(y, sr)
    assert len(whole) == int(np.ceil(len(y) / (sr / 25)))
    m, parts = motion.EnergyMeter(sr), []
    for i in range(0, len(y), 777):
        parts.append(m.push(y[i:i + 777]))
    parts.append(m.flush())
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole[:12].max() == 0 and whole[13:37].min() > 0.5
    assert len(motion.frame_energy(y, sr, 100)) == 100


def test_head_motion_deterministic_causal_and_still():
    e = np.linspace(0, 1, 200)
    h1, h2 = motion.HeadMotion(1.0, seed=3), motion.HeadMotion(1.0, seed=3)
    a = np.stack([h1.step(v) for v in e])
    b = np.stack([h2.step(v) for v in e])
    np.testing.assert_array_equal(a, b)
    c = np.stack([motion.HeadMotion(1.0, seed=4).step(v) for v in e])
    assert np.abs(a - c).max() > 0.1
    assert np.stack([motion.HeadMotion(0.0).step(v) for v in e]).max() == 0
    # smooth (low-pass) and of the documented size
    assert np.abs(np.diff(a[:, 0])).max() < 0.3
    assert 0.2 < np.abs(a[:, 0]).max() < 6
    # louder speech, more motion (same noise)
    quiet = np.stack([motion.HeadMotion(1.0, seed=3).step(0.0) for _ in range(1)] and
                     [h.step(0.0) for h in [motion.HeadMotion(1.0, seed=3)] for _ in range(250)])
    loud_h = motion.HeadMotion(1.0, seed=3)
    loud = np.stack([loud_h.step(1.0) for _ in range(250)])
    assert loud[50:].std() > 1.5 * quiet[50:].std()


def test_blinks_every_few_seconds():
    b = motion.Blinker(True, seed=0)
    c = np.array([b.closure(t) for t in range(25 * 60)])
    starts = np.flatnonzero((c[1:] > 0) & (c[:-1] == 0)) + 1
    gaps = np.diff(starts) / 25
    assert len(starts) >= 10 and gaps.min() >= 2.0 - 1e-9 and gaps.max() <= 5.0 + 1e-9
    assert c.max() == 1.0
    assert max(motion.Blinker(False).closure(t) for t in range(500)) == 0
    np.testing.assert_array_equal(c, [motion.Blinker(True, seed=0).closure(t) for t in range(1500)])


# ---------------------------------------------------------------------------- animator


def test_silence_is_the_closed_photo(example, neutral):
    anim = A.PhotoAnimator(example, neutral, A.AnimationSettings(head_motion=0, blink=False))
    assert anim.mouth_closed
    frames = list(anim.frames(np.repeat(neutral[None], 10, axis=0)))
    assert len(frames) == 10
    for f in frames:
        assert np.array_equal(f, anim.base)
    found = P.detect_faces(anim.base)
    width = np.ptp(found[0].points[48:55, 0])
    assert inner_lip_gap(found[0].points[None])[0] < 0.06 * width
    assert A.teeth_fraction(anim.base, anim.rest) < 0.05


def test_stream_equals_offline_and_seed(example, neutral):
    lm = _synthetic_landmarks(neutral, 70)
    energy = np.abs(np.sin(np.arange(70) / 5))
    s = A.AnimationSettings(seed=5)
    anim = A.PhotoAnimator(example, neutral, s)
    offline = list(anim.frames(lm, energy))
    assert len(offline) == 70
    rng = np.random.default_rng(0)
    streamed, i = [], 0
    while i < 70:
        k = int(rng.integers(0, 9))
        streamed += anim.push(lm[i:i + k], energy[i:i + k])
        i += k
    streamed += anim.flush()
    assert len(streamed) == 70
    assert all(np.array_equal(a, b) for a, b in zip(offline, streamed))
    again = list(A.PhotoAnimator(example, neutral, s).frames(lm, energy))
    assert all(np.array_equal(a, b) for a, b in zip(offline, again))
    other = list(A.PhotoAnimator(example, neutral, A.AnimationSettings(seed=6)).frames(lm, energy))
    assert any(not np.array_equal(a, b) for a, b in zip(offline, other))


def test_animate_photo_library_function(example, neutral):
    lm = _synthetic_landmarks(neutral, 12)
    frames = list(A.animate_photo(example, lm))          # neutral from the sequence
    assert len(frames) == 12 and frames[0].shape == (640, 512, 3)
    with pytest.raises(ValueError):
        A.animate_photo(example, np.zeros((5, 60, 2)))


def test_mouth_is_painted_when_open(example, neutral):
    lm = _synthetic_landmarks(neutral, 16)
    anim = A.PhotoAnimator(example, neutral, A.AnimationSettings(head_motion=0, blink=False,
                                                                 smooth=0, lip_gain=3.0))
    frames = list(anim.frames(lm))
    i = int(np.argmax(A.mouth_opening(anim.transfer(lm))))
    pts = anim.transfer(lm[i:i + 1])[0]
    m = np.zeros(frames[i].shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(pts[60:68]).astype(np.int32)], 255)
    m = cv2.erode(m, np.ones((3, 3), np.uint8))
    inside = frames[i][m > 0].astype(float)
    assert m.sum() > 0 and inside.std(axis=0).mean() > 10        # teeth + cavity, not one smear
    synth = A.PhotoAnimator(example, neutral, A.AnimationSettings(
        head_motion=0, blink=False, smooth=0, lip_gain=3.0, teeth="synthetic"))
    assert synth.painter.texture is None and anim.painter.texture is not None


def _eye_aspect(points: np.ndarray) -> float:
    """Mean eye aspect ratio (Soukupova & Cech 2016) of both eyes: lid distance / eye width."""
    out = []
    for e in (points[36:42], points[42:48]):
        out.append((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4]))
                   / (2 * np.linalg.norm(e[0] - e[3])))
    return float(np.mean(out))


def test_blink_closes_the_eyes(example, neutral):
    anim = A.PhotoAnimator(example, neutral, A.AnimationSettings(head_motion=0))
    open_ = anim.render(anim.rest, None, 0.0)
    shut = anim.render(anim.rest, None, 1.0)
    ear_open = _eye_aspect(P.detect_faces(open_)[0].points)
    ear_shut = _eye_aspect(P.detect_faces(shut)[0].points)
    print(f"dlib eye aspect ratio: open {ear_open:.3f}, blink {ear_shut:.3f}")
    assert ear_shut < 0.8 * ear_open      # measured: 0.228 -> 0.163 (smiling, narrow eyes)


# ---------------------------------------------------------------------------- paste-back


def test_paste_back_roundtrip_and_feather(example):
    img = example.image
    crop, t = compose.align_crop(img, example.points, 128)
    assert crop.shape == (128, 128, 3)
    eyes = compose.transform_points(np.stack([example.points[36:42].mean(0),
                                              example.points[42:48].mean(0)]), t)
    np.testing.assert_allclose(eyes, [[0.32 * 128, 0.4 * 128], [0.68 * 128, 0.4 * 128]], atol=1e-6)
    back = compose.paste_back(img, crop, t)
    face = cv2.boundingRect(np.round(example.points).astype(np.int32))
    x, y, w, h = face
    err = np.abs(back[y:y + h, x:x + w].astype(int) - img[y:y + h, x:x + w]).mean()
    assert err < 6          # two bilinear resamplings at 0.5x
    red = np.zeros_like(crop)
    red[..., 0] = 255
    mask = compose.crop_mask((128, 128), compose.transform_points(example.points, t))
    out = compose.paste_back(img, red, t, mask)
    changed = np.abs(out.astype(int) - img).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x - 0.3 * w and xs.max() <= x + 1.3 * w
    c = np.round(example.points[30]).astype(int)
    assert out[c[1], c[0], 0] == 255 and out[c[1], c[0], 1] == 0      # nose: fully the crop
    edge = out[ys, xs].astype(int)
    assert ((edge[:, 1] > 0) & (edge[:, 0] < 255)).any()               # a soft edge exists
    rgb = compose.paste_back(img, crop, t, out=img.copy())
    assert rgb.shape == img.shape


# ---------------------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def driving(data_dir):
    """The default model's landmarks for 6 s of real speech + its neutral."""
    from tf_talkface.audio.io import load_audio
    from tf_talkface.saved_model import ModelError, load_model

    try:
        model = load_model(None)
    except ModelError as e:
        pytest.skip(f"no bundled default model: {e}")
    y = load_audio(data_dir / "speech" / "audio_sample.wav", model.sample_rate)
    return model.predict(y), motion.model_neutral(model), motion.frame_energy(
        y, model.sample_rate, len(model.predict(y)))


def _dlib_openings(frames):
    out = []
    for f in frames:
        faces = P.detect_faces(f)
        assert faces, "dlib lost the face in an output frame"
        out.append(inner_lip_gap(faces[0].points[None])[0])
    return np.array(out)


def test_mouth_opening_follows_driving_landmarks(driving, example):
    lm, neu, energy = driving
    frames = list(A.animate_photo(example, lm, neu, energy))
    measured = _dlib_openings(frames)
    r = np.corrcoef(measured, inner_lip_gap(lm))[0, 1]
    print(f"dlib-measured mouth opening vs driving landmarks: r = {r:.3f} over {len(lm)} frames")
    assert r >= 0.8


@pytest.mark.parametrize("source", ["obama2s_1080p", "grid_s1", "grid_misc"])
def test_face_found_in_every_frame_on_real_faces(driving, data_dir, tmp_path, source):
    from tf_talkface.face.landmarks import iter_frames

    video = {"obama2s_1080p": data_dir / "video" / "obama2s.mp4",
             "grid_s1": data_dir / "grid" / "s1" / "bbaf3s.mp4",
             "grid_misc": data_dir / "grid" / "misc" / "lbax4n.mpg"}[source]
    frame = None
    for frame in iter_frames(video, "rgb24"):   # the last frame (obama2s opens on a title card)
        pass
    f = _write(tmp_path / "frame.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    ph = P.load_photo(f, size=540 if source.startswith("obama") else 1080)
    lm, neu, energy = driving
    frames = list(A.animate_photo(ph, lm[:50], neu, energy[:50]))
    measured = _dlib_openings(frames)
    assert len(measured) == 50


def test_still_head_keeps_the_upper_face(driving, example):
    from skimage.metrics import structural_similarity

    lm, neu, energy = driving
    settings = A.AnimationSettings(head_motion=0.0)
    frames = list(A.animate_photo(example, lm, neu, energy, settings))
    p = example.points
    top = int(max(p[17:27, 1].min() - 0.3 * (p[8, 1] - p[27, 1]), 0))
    bottom = int(p[33, 1])                      # nose base: above the mouth and jaw
    x0, x1 = int(p[0, 0]), int(p[16, 0])
    ref = cv2.cvtColor(example.image, cv2.COLOR_RGB2GRAY)[top:bottom, x0:x1]
    s = [structural_similarity(ref, cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[top:bottom, x0:x1],
                               data_range=255) for f in frames]
    print(f"upper-face SSIM with a still head: min {min(s):.3f}, mean {np.mean(s):.3f}")
    assert min(s) >= 0.9


# ---------------------------------------------------------------------------- CLIs


def _media(path):
    from tf_talkface.audio.io import load_audio
    from tf_talkface.face.landmarks import video_info

    info = video_info(path)
    info["audio_s"] = len(load_audio(path, 16000)) / 16000 if info["has_audio"] else 0.0
    return info


def test_generate_image_example_end_to_end(tmp_path, capsys):
    """The README's main job: ``-i example --image example`` right after installation."""
    from tf_talkface.audio.io import load_audio
    from tf_talkface.generate import main

    assert main(["-i", "example", "--image", "example", "-o", str(tmp_path), "--quiet"]) == 0
    mp4, npy = tmp_path / "grid_s1_bbaf3s.mp4", tmp_path / "grid_s1_bbaf3s.npy"
    lm = np.load(npy)
    info = _media(mp4)
    duration = len(load_audio(EXAMPLE_SPEECH, 16000)) / 16000
    assert info["codec"] == "h264" and info["audio_codec"] == "aac"
    assert (info["width"], info["height"]) == (512, 640) and info["fps"] == 25
    assert info["n_frames"] == len(lm) and abs(len(lm) / 25 - duration) <= 0.04
    assert abs(info["audio_s"] - duration) < 0.05
    # a second run skips (resumable), --overwrite redoes
    assert main(["-i", "example", "--image", "example", "-o", str(tmp_path), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_generate_image_folder_seed_and_still(data_dir, tmp_path):
    from tf_talkface.face.landmarks import iter_frames
    from tf_talkface.generate import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.flac").symlink_to(EXAMPLE_SPEECH)
    (src / "b.wav").symlink_to(data_dir / "speech" / "audio_sample.wav")
    photo = data_dir / "photos" / "two_people.jpg"
    base = ["-i", str(src), "--image", str(photo), "--size", "360", "--quiet"]
    assert main(base + ["-o", str(tmp_path / "o1"), "--seed", "1", "--still"]) == 0
    assert main(base + ["-o", str(tmp_path / "o2"), "--seed", "1", "--still"]) == 0
    assert main(base + ["-o", str(tmp_path / "o3"), "--seed", "2", "--face-index", "1",
                        "--crop", "--no-blink", "--lip-gain", "1.5"]) == 0
    for name in ("a", "b"):
        assert (tmp_path / "o1" / f"{name}.npy").is_file()
        i1 = _media(tmp_path / "o1" / f"{name}.mp4")
        assert (i1["width"], i1["height"]) == (614, 360) and i1["has_audio"]
        i3 = _media(tmp_path / "o3" / f"{name}.mp4")
        assert i3["width"] == i3["height"] == 360            # --crop: a square
    f1 = list(iter_frames(tmp_path / "o1" / "a.mp4", "rgb24"))
    f2 = list(iter_frames(tmp_path / "o2" / "a.mp4", "rgb24"))
    assert all(np.array_equal(a, b) for a, b in zip(f1, f2))      # deterministic


def _cli_err(main, argv, capsys, code=1) -> str:
    assert main(argv) == code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return err[-1] if err else ""


def test_generate_image_bad_inputs(tmp_path, capsys, example_rgb):
    from tf_talkface.generate import main

    out = ["-o", str(tmp_path / "out"), "--quiet", "-i", "example"]
    rng = np.random.default_rng(0)
    noise = _write(tmp_path / "noise.png", rng.integers(0, 255, (200, 300, 3), np.uint8))
    (tmp_path / "fake.jpg").write_text("hello")
    cases = {
        str(tmp_path / "nope.jpg"): "file not found",
        str(noise): "no face found",
        str(tmp_path / "fake.jpg"): "not an image",
    }
    for photo, what in cases.items():
        line = _cli_err(main, out + ["--image", photo], capsys)
        assert line.startswith("generate: error: ") and photo in line and what in line, line
    line = _cli_err(main, out + ["--image", "example", "--face-index", "3"], capsys)
    assert "only 1 face(s)" in line
    assert "--video lines" in _cli_err(main, out + ["--image", "example", "--video", "lines"],
                                       capsys)
    assert ">= 0" in _cli_err(main, out + ["--image", "example", "--head-motion", "-1"], capsys,
                              code=2)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.mp4"))


def test_stream_image_equals_offline(tmp_path):
    from tf_talkface.audio.io import load_audio
    from tf_talkface.stream import main, open_streamer

    frames_dir = tmp_path / "frames"
    argv = ["-i", "example", "-o", str(tmp_path / "s.npy"), "--image", "example", "--frames",
            str(frames_dir), "--video", str(tmp_path / "s.mp4"), "--chunk", "1000", "--seed", "4",
            "--size", "320"]
    assert main(argv) == 0
    lm = np.load(tmp_path / "s.npy")
    pngs = sorted(frames_dir.glob("frame_*.png"))
    assert len(pngs) == len(lm) == _media(tmp_path / "s.mp4")["n_frames"]
    assert _media(tmp_path / "s.mp4")["has_audio"]
    s = open_streamer(None)
    y = load_audio(EXAMPLE_SPEECH, s.sample_rate)
    anim = A.PhotoAnimator(P.load_photo(EXAMPLE_PHOTO, size=320), motion.model_neutral(s),
                           A.AnimationSettings(seed=4))
    offline = list(anim.frames(lm, motion.frame_energy(y, s.sample_rate, len(lm))))
    for f, png in zip(offline, pngs):
        assert np.array_equal(f, cv2.imread(str(png))[:, :, ::-1])


def test_frames_are_lazy_bounded_memory(example, neutral, tmp_path):
    """An hour of landmarks (memory-mapped) starts rendering at once: frames are produced per
    chunk, never all at the end."""
    import itertools
    import time

    n = 90_000
    mm = np.lib.format.open_memmap(tmp_path / "hour.npy", mode="w+", dtype=np.float32,
                                   shape=(n, 68, 2))
    mm[:] = neutral[None]
    t0 = time.perf_counter()
    first = list(itertools.islice(A.animate_photo(example, mm, neutral), 30))
    assert len(first) == 30 and time.perf_counter() - t0 < 20


def test_mp4_writer_preset(tmp_path):
    from tf_talkface.viz.video_io import write_video

    frames = [np.full((64, 64, 3), v, np.uint8) for v in range(0, 250, 10)]
    A.write_mp4(tmp_path / "a.mp4", iter(frames))              # veryfast, no sound
    assert _media(tmp_path / "a.mp4")["n_frames"] == len(frames)
    with pytest.raises(ValueError, match="preset"):
        write_video(tmp_path / "b.mp4", iter(frames), preset="warp9")
    assert not (tmp_path / "b.mp4").exists()
