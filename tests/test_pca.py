"""PCA basis: fitting, projection, persistence, and the original 2020 basis."""
import numpy as np
import pytest

from tf_talkface.face.pca import PCABasis, fit_pca


def test_fit_recovers_low_rank_structure(tmp_path):
    rng = np.random.default_rng(1)
    axes = np.linalg.qr(rng.normal(size=(136, 3)))[0].T  # 3 orthonormal axes
    codes = rng.normal(size=(500, 3)) * [3.0, 2.0, 1.0]
    x = codes @ axes + rng.normal(size=136)
    b = fit_pca(x, 3, template=np.zeros((68, 2)))
    np.testing.assert_allclose(b.components @ b.components.T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(b.reconstruct(b.project(x)).reshape(500, -1), x, atol=1e-4)
    assert b.explained_variance_ratio[0] > b.explained_variance_ratio[1] > b.explained_variance_ratio[2]
    np.testing.assert_allclose(b.explained_variance_ratio.sum(), 1.0, atol=1e-5)
    b.save(tmp_path / "basis.json")
    b2 = PCABasis.load(tmp_path)
    np.testing.assert_allclose(b2.project(x), b.project(x), atol=1e-5)
    assert b2.template.shape == (68, 2)


def test_projection_accepts_shapes_and_vectors():
    rng = np.random.default_rng(2)
    b = fit_pca(rng.normal(size=(50, 136)), 4)
    shapes = rng.normal(size=(7, 68, 2))
    np.testing.assert_allclose(b.project(shapes), b.project(shapes.reshape(7, 136)), atol=1e-6)
    assert b.reconstruct(b.project(shapes)).shape == (7, 68, 2)
    with pytest.raises(ValueError, match="204"):
        fit_pca(rng.normal(size=(50, 204)), 2).project(shapes)


def test_original_2020_basis_loads(data_dir):
    b = PCABasis.load(data_dir / "reference" / "eskimez2020")
    assert (b.n_components, b.dim) == (6, 3)
    assert b.template.shape == (68, 3)
    np.testing.assert_allclose(b.components @ b.components.T, np.eye(6), atol=1e-4)
    # the template face projects near the PCA mean: its coefficients are small
    assert np.abs(b.project(b.template)).max() < 0.2


def test_missing_basis_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PCA basis found"):
        PCABasis.load(tmp_path)
