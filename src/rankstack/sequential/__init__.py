"""Sequential recommendation: a SASRec-style causal transformer trained with full-softmax cross-entropy.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.sequential.sasrec import SASRec, SASRecConfig

_HOME = {
    **dict.fromkeys(["SASRec", "SASRecConfig"], "sasrec"),
}

__all__ = ["SASRec", "SASRecConfig"]

__getattr__ = lazy_getattr(__name__, _HOME)
