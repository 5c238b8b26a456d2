"""Sequential recommendation: a SASRec-style causal transformer trained with full-softmax cross-entropy."""

from rankstack.sequential.sasrec import SASRec, SASRecConfig

__all__ = ["SASRec", "SASRecConfig"]
