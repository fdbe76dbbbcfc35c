"""The training batches: shuffled, jittered and masked from (seed, epoch, batch), the same every run;
SpecAugment-style masking refills stripes with the example's own column means."""

import numpy as np
import pytest

from tinykd.config import resolve
from tinykd.distill.training import EpochBatches, mask_stripes
from tinykd.errors import TinykdError


def _features(n=64, frames=49, coeffs=10, seed=0):
    rng = np.random.default_rng(seed)
    # Columns with their own offsets, as MFCCs have (c0 far from zero).
    return (rng.normal(0, 1, (n, frames, coeffs, 1)) + np.arange(coeffs)[None, None, :, None] * 3).astype(np.float32)


def test_masks_are_stripes_refilled_with_the_column_means():
    x = _features()
    out = mask_stripes(x, 2, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype and not np.shares_memory(out, x)
    means = x.mean(axis=1, keepdims=True)
    changed = out != x
    assert changed.any()
    # Every changed value is its column's mean over the example's frames: nothing outside the range.
    assert np.allclose(out[changed], np.broadcast_to(means, x.shape)[changed])
    for i in range(len(x)):
        rows = np.flatnonzero(changed[i].all(axis=(1, 2)))  # whole frames masked
        cols = np.flatnonzero(changed[i].all(axis=(0, 2)))  # whole coefficients masked
        # Two stripes each, of at most 49 // 6 = 8 frames and 10 // 5 = 2 coefficients.
        assert len(rows) <= 2 * 8 and len(cols) <= 2 * 2
    # Some examples lose frames and some lose coefficients; no example loses everything.
    assert changed.all(axis=(2, 3)).any() and changed.all(axis=(1, 3)).any()
    assert not changed.all(axis=(1, 2, 3)).any()


def test_no_masks_is_the_input_itself():
    x = _features(8)
    assert mask_stripes(x, 0, np.random.default_rng(0)) is x


def test_masked_batches_are_the_same_on_every_run_and_differ_by_epoch():
    x, y = _features(100), np.arange(100) % 10
    a, b = EpochBatches(x, y, 32, seed=5, max_shift=0, masks=2), EpochBatches(x, y, 32, seed=5, max_shift=0, masks=2)
    first = [a[i][0] for i in range(len(a))]
    assert all(np.array_equal(f, b[i][0]) for i, f in enumerate(first))
    plain = EpochBatches(x, y, 32, seed=5, max_shift=0)
    assert not np.array_equal(first[0], plain[0][0]) and np.array_equal(a[0][1], plain[0][1])
    a.on_epoch_end()
    assert not np.array_equal(first[0], a[0][0])


def test_negative_masks_are_refused():
    with pytest.raises(TinykdError, match="non-negative train_limit, test_limit, jitter, masks"):
        resolve(overrides={"data": {"masks": -1}})
