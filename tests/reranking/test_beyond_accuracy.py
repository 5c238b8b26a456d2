"""Beyond-accuracy metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rankstack.evaluation.beyond_accuracy import (
    category_coverage_at_k,
    exposure_counts,
    gini,
    gini_of_exposure_at_k,
    intra_list_diversity_at_k,
)


def test_gini_of_known_distributions() -> None:
    assert gini(np.ones(5)) == 0.0
    assert gini(np.zeros(4)) == 0.0
    # one of n items holds everything: (n − 1) / n
    assert gini(np.array([0, 0, 0, 7.0])) == pytest.approx(3 / 4)
    # x = [1, 2, 3]: Σ(2i − n − 1)x_i = (−2)(1) + 0(2) + 2(3) = 4; n Σx = 18
    assert gini(np.array([3.0, 1.0, 2.0])) == pytest.approx(4 / 18)
    with pytest.raises(ValueError):
        gini(np.array([-1.0, 2.0]))


def test_exposure_and_its_gini_over_the_catalogue() -> None:
    recs = np.array([[0, 1, -1], [0, 2, 1]])
    np.testing.assert_array_equal(exposure_counts(recs, 4, 2), [2, 1, 1, 0])
    weighted = exposure_counts(recs, 4, 3, position_weighted=True)
    np.testing.assert_allclose(weighted, [2.0, 1 / np.log2(3) + 0.5, 1 / np.log2(3), 0.0])
    assert gini_of_exposure_at_k(recs, 4, 2) == pytest.approx(gini(np.array([2, 1, 1, 0])))


def test_category_coverage_per_list() -> None:
    cats = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]]))
    recs = np.array([[0, 1, 2], [0, -1, -1], [3, -1, -1]])
    np.testing.assert_allclose(category_coverage_at_k(recs, cats, 2), [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(category_coverage_at_k(recs, cats, 3), [1.0, 1 / 3, 0.0])


def test_intra_list_diversity_is_the_shared_metric() -> None:
    vecs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(intra_list_diversity_at_k(np.array([[0, 1, 2]]), vecs, 3), [2 / 3])
