"""TFRecord schema round trip, shard writer atomicity, corrupt shards."""
import numpy as np
import pytest

from tf_talkface.data.records import (ClipRecord, RecordSpec, ShardWriter, iter_clips,
                                      pcm16_bytes, pcm16_to_float, serialize_clip)


def _clip(i, t=9, with_feats=True, k=0, raw=True):
    rng = np.random.default_rng(i)
    return ClipRecord(
        clip_id=f"s1/clip{i}", speaker="s1", split="train", source=f"s1/clip{i}.mp4",
        recipe="eskimez2018" if with_feats else "eskimez2020",
        audio=np.clip(rng.normal(0, 0.3, t * 320), -1, 1).astype(np.float32), audio_sample_rate=8000,
        landmarks_raw=rng.uniform(0, 300, (t, 68, 2)).astype(np.float32) if raw else None,
        landmarks=rng.uniform(0, 1, (t, 68, 2)).astype(np.float32),
        features=rng.normal(size=(t, 128)).astype(np.float32) if with_feats else None,
        pca=rng.normal(size=(t, k)).astype(np.float32) if k else None)


def test_pcm16_round_trip_is_within_half_a_step():
    x = np.linspace(-1, 1, 1001).astype(np.float32)
    np.testing.assert_allclose(pcm16_to_float(pcm16_bytes(x)), x, atol=0.5 / 32767 + 1e-7)


@pytest.mark.parametrize("feats,k,raw", [(True, 0, True), (False, 6, True), (False, 6, False)])
def test_round_trip(tmp_path, feats, k, raw):
    recs = [_clip(i, t=5 + i, with_feats=feats, k=k, raw=raw) for i in range(3)]
    with ShardWriter(tmp_path, "train") as w:
        for r in recs:
            w.write(serialize_clip(r))
    spec = RecordSpec(landmark_dim=136, feature_dim=128 if feats else 0, n_pca=k, raw_landmarks=raw)
    got = list(iter_clips([tmp_path / w.shards[0][0]], spec))
    assert len(got) == 3
    for r, g in zip(recs, got):
        assert g["clip_id"] == r.clip_id and g["num_frames"] == r.num_frames
        np.testing.assert_allclose(g["landmarks"], r.landmarks.reshape(r.num_frames, -1))
        np.testing.assert_allclose(g["audio"], pcm16_to_float(pcm16_bytes(r.audio)))
        if raw:
            np.testing.assert_allclose(g["landmarks_raw"], r.landmarks_raw.reshape(r.num_frames, -1))
        else:
            assert "landmarks_raw" not in g
        if feats:
            np.testing.assert_allclose(g["features"], r.features)
        if k:
            np.testing.assert_allclose(g["pca"], r.pca)


def test_frame_count_mismatch_is_refused():
    r = _clip(0)
    r.features = r.features[:-1]
    with pytest.raises(ValueError, match="features has 8 frames, landmarks 9"):
        serialize_clip(r)


def test_shards_rotate_and_leave_no_temp_files(tmp_path):
    with ShardWriter(tmp_path, "val", max_bytes=60_000) as w:
        for i in range(6):
            w.write(serialize_clip(_clip(i)))
    assert len(w.shards) >= 2 and sum(n for _, n, _ in w.shards) == 6
    assert not list(tmp_path.glob("*.tmp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(s[0] for s in w.shards)


def test_failed_write_removes_the_partial_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, "train") as w:
            w.write(serialize_clip(_clip(0)))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_shard_is_named(tmp_path):
    with ShardWriter(tmp_path, "train") as w:
        for i in range(3):
            w.write(serialize_clip(_clip(i)))
    p = tmp_path / w.shards[0][0]
    data = bytearray(p.read_bytes())
    data[200:260] = b"\x00" * 60
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{p.name}: corrupt TFRecord shard"):
        list(iter_clips([p], RecordSpec(feature_dim=128)))
