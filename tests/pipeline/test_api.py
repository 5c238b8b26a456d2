"""``rankstack.pipeline.api``: a trusted slate item is the model validation would build."""

from __future__ import annotations

import copy
import pickle

from hypothesis import given
from hypothesis import strategies as st

from rankstack.pipeline.api import RecommendResponse, ScoredItem


@given(item_id=st.text(max_size=20), score=st.floats(allow_nan=False, allow_infinity=False),
       propensity=st.none() | st.floats(0.0, 1.0))
def test_a_trusted_item_equals_a_validated_one(item_id: str, score: float, propensity: float | None) -> None:
    """Same fields, fields set, JSON, copies and pickles as ``ScoredItem(...)``."""
    trusted = ScoredItem.trusted(item_id, score, propensity)
    checked = ScoredItem(item_id=item_id, score=score, propensity=propensity)
    assert trusted == checked and trusted.model_fields_set == checked.model_fields_set
    assert trusted.model_dump_json() == checked.model_dump_json()
    assert copy.deepcopy(trusted) == checked and pickle.loads(pickle.dumps(trusted)) == checked
    assert trusted.model_copy(update={"score": 0.0}) == checked.model_copy(update={"score": 0.0})


def test_trusted_items_do_not_share_state() -> None:
    """Setting a field on one item leaves the others alone (each has its own dict and fields set)."""
    first, second = ScoredItem.trusted("a", 1.0, None), ScoredItem.trusted("a", 1.0, None)
    first.score = 2.0
    assert second.score == 1.0 and first.model_fields_set is not second.model_fields_set
    response = RecommendResponse(request_id="r", user_id="u", items=[first, second])
    assert RecommendResponse.model_validate_json(response.model_dump_json()) == response
