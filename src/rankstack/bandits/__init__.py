"""Bandit policies: the ``Policy`` protocol, its one propensity convention, and the exploration policies.

The simulator's logging policies (``rankstack.bandits.logging_policies``) are not imported here, so that
the serving path never loads the simulator.
"""

from rankstack.bandits.draws import RequestDraws, request_rng
from rankstack.bandits.exploration import EpsilonGreedy, Greedy, Softmax, Uniform
from rankstack.bandits.policy import PAD, Policy, Slates, inclusion, slot_propensity

__all__ = [
    "PAD",
    "EpsilonGreedy",
    "Greedy",
    "Policy",
    "RequestDraws",
    "Slates",
    "Softmax",
    "Uniform",
    "inclusion",
    "request_rng",
    "slot_propensity",
]
