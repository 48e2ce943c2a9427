import numpy as np

from models.baselines import pixel_vectors


def test_pixel_vectors_in_chunks_match_the_whole_store_at_once(tmp_path):
    """Chunked reading (bounded memory on a full-size store) gives the vectors of the rows asked for, in order."""
    store = np.lib.format.open_memmap(
        tmp_path / "store.npy", mode="w+", dtype=np.uint8, shape=(37, 3, 16, 32)
    )
    store[:] = np.random.default_rng(1).integers(0, 255, store.shape, dtype=np.uint8)
    rows = np.array([30, 2, 2, 17, 36, 0, 5])
    whole = pixel_vectors(np.asarray(store[rows]), (4, 8), chunk=1000)
    chunked = pixel_vectors(store, (4, 8), rows=rows, chunk=3)
    assert whole.shape == (7, 32) and whole.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(chunked, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(chunked[1], chunked[2])
    assert pixel_vectors(store, (4, 8), rows=rows[:0]).shape == (0, 32)
