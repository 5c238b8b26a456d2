"""``rankstack.ope`` names its estimators lazily: importing it loads no scikit-learn and no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rankstack.ope as ope


def test_lazy_names_resolve():
    for name in ope.__all__:
        assert getattr(ope, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ope.nope


def test_import_is_light():
    code = ("import sys, rankstack.ope, rankstack.ope.estimators, rankstack.ope.feedback; "
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
