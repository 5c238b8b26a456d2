"""Off-policy evaluation: estimate a policy's value from another policy's logged feedback.

Single-action estimators (DM, IPS, SNIPS, DR, SNDR, Switch-DR, DRos, MIPS, SN-MIPS) in
:mod:`rankstack.ope.estimators` on the validated array contract of :mod:`rankstack.ope.feedback`; bootstrap
intervals, reward models with cross-fitting, logs from canonical events or the service's state store.
Slate estimators (standard, independent and reward-interaction IPS, pseudo-inverse, cascade-DR) are in
:mod:`rankstack.ope.slate_estimators`.
Names are imported on first access (``rankstack.lazy_exports``).
"""

from __future__ import annotations

from rankstack.lazy_exports import lazy_getattr

_WHERE = {
    "OffPolicyData": "feedback",
    "support_report": "feedback",
    "Estimator": "estimators",
    "DirectMethod": "estimators",
    "IPS": "estimators",
    "SNIPS": "estimators",
    "DR": "estimators",
    "SNDR": "estimators",
    "SwitchDR": "estimators",
    "DRos": "estimators",
    "MIPS": "estimators",
    "SNMIPS": "estimators",
    "make_estimator": "estimators",
    "bootstrap": "bootstrap",
    "Interval": "bootstrap",
    "BanditLog": "bandit_log",
    "RewardModel": "reward_models",
    "LogisticRewardModel": "reward_models",
    "cross_fit": "reward_models",
    "estimate_policy_value": "policy_value",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
