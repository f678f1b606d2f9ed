"""Import of the original projects' HDF5 layouts."""
import h5py
import numpy as np
import pytest

from tf_talkface.data.hdf5 import import_hdf5
from tf_talkface.data.manifest import load_manifest, shard_paths
from tf_talkface.data.records import RecordSpec, iter_clips
from tf_talkface.face.pca import PCABasis
from tf_talkface.prepare import PrepareError


def _read_all(d):
    m = load_manifest(d)
    spec = RecordSpec.from_manifest(m)
    return m, {c["clip_id"]: c for s in ("train", "val", "test")
               for c in iter_clips(shard_paths(d, m, s), spec)}


def test_2018_layout(tmp_path):
    rng = np.random.default_rng(0)
    fl = rng.uniform(0, 1, (6, 75, 136)).astype(np.float32)
    mel = rng.normal(size=(6, 75, 128)).astype(np.float32)
    with h5py.File(tmp_path / "train.hdf5", "w") as f:
        # the original extractor leaves one all-zero row at the end
        f.create_dataset("flmark", data=np.concatenate([fl, np.zeros((1, 75, 136), np.float32)]))
        f.create_dataset("MelFeatures", data=np.concatenate([mel, np.zeros((1, 75, 128), np.float32)]))
    import_hdf5(tmp_path / "train.hdf5", tmp_path / "ds", "eskimez2018", split="0.5,0.5,0")
    m, clips = _read_all(tmp_path / "ds")
    assert len(clips) == 6 and m["counts"]["train"] == 3 and m["schema"]["raw_landmarks"] is False
    for i in range(6):
        c = clips[f"train/{i:06d}"]
        np.testing.assert_allclose(c["landmarks"], fl[i])
        np.testing.assert_allclose(c["features"], mel[i])
        assert c["audio"].size == 0


def test_2020_layout_with_original_basis(tmp_path, data_dir):
    ref = PCABasis.load(data_dir / "reference" / "eskimez2020")
    rng = np.random.default_rng(1)
    codes = rng.normal(scale=0.05, size=(4, 75, 6)).astype(np.float32)
    lm = ref.reconstruct(codes).reshape(4, 75, 204)
    speech = rng.uniform(-0.5, 0.5, (4, 24000)).astype(np.float32)
    with h5py.File(tmp_path / "nr.h5", "w") as f:
        f.create_dataset("landmarks", data=lm)
        f.create_dataset("speech", data=speech)
    import_hdf5(tmp_path / "nr.h5", tmp_path / "ds", "eskimez2020",
                basis=str(data_dir / "reference" / "eskimez2020"))
    m, clips = _read_all(tmp_path / "ds")
    assert m["schema"]["landmark_dim"] == 204 and m["schema"]["n_pca"] == 6
    for i in range(4):
        c = clips[f"nr/{i:06d}"]
        np.testing.assert_allclose(c["pca"], codes[i], atol=1e-4)  # the original basis recovers the codes
        np.testing.assert_allclose(c["audio"], speech[i], atol=1 / 32767)


def test_wrong_file_is_named(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("foo", data=np.zeros(3))
    with pytest.raises(PrepareError, match=r"x.h5: not a eskimez2018 HDF5 file"):
        import_hdf5(tmp_path / "x.h5", tmp_path / "ds", "eskimez2018")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(PrepareError, match="junk.h5: cannot read HDF5"):
        import_hdf5(tmp_path / "junk.h5", tmp_path / "ds", "eskimez2018")
