"""The wall time of a batch as a line in its size, learnt from the batches that ran: what load shedding and the
stage runner decide with; and when a call has been fast enough to skip its thread hand-off."""

from __future__ import annotations

__all__ = ["HALFLIFE_BATCHES", "OUTLIER_FACTOR", "BatchCost", "InlineTrust"]
HALFLIFE_BATCHES = 16  # the weight of a batch in the estimates halves every this many batches
OUTLIER_FACTOR = 4.0  # a batch counts as at most this many times its current estimate (a stall, a paused process)


class BatchCost:
    """A batch's wall time as a line in its size, ``t(b) = α + β·b``, fitted by exponentially weighted least squares.

    With weights ``w`` halving every ``halflife`` batches and ``S = Σw``, ``S_b = Σw·b``, ``S_t = Σw·t``,
    ``S_bb = Σw·b²``, ``S_bt = Σw·b·t``: ``β = (S_bt − S_b·S_t/S) / (S_bb − S_b²/S)``, ``α = (S_t − β·S_b)/S``.
    While the sizes seen hardly vary (weighted variance under 0.25) the slope cannot be fitted and the cost is
    taken as proportional to size (``α = 0``, ``β = S_t/S_b``): pessimistic for larger batches, whose first runs
    then correct the fit. A negative slope is read as a flat cost (``β = 0``, ``α = S_t/S``) and a negative
    intercept as a line through the origin (``β = S_bt/S_bb``). 0 for every size before the first batch. A batch
    counts as at most ``OUTLIER_FACTOR`` times its current estimate, so that one stall (the process paused by a
    busy machine, a slow disk) does not shed everything for the next dozens of batches; a pipeline that really
    became slower is followed within a few dozen batches (meanwhile queued requests that can no longer make
    their deadline are still dropped unrun)."""

    def __init__(self, halflife: float = HALFLIFE_BATCHES) -> None:
        if halflife <= 0:
            raise ValueError(f"halflife must be positive, got {halflife}")
        self.decay = 0.5 ** (1.0 / halflife)
        self._s = self._sb = self._st = self._sbb = self._sbt = 0.0
        self.alpha = self.beta = 0.0

    def observe(self, size: int, seconds: float) -> None:
        """Add one batch of ``size`` requests that took ``seconds``."""
        d, b, t = self.decay, float(size), max(seconds, 0.0)
        if self._s > 0 and self.seconds(size) > 0:
            t = min(t, OUTLIER_FACTOR * self.seconds(size))
        self._s, self._sb, self._st = d * self._s + 1.0, d * self._sb + b, d * self._st + t
        self._sbb, self._sbt = d * self._sbb + b * b, d * self._sbt + b * t
        mean_b, mean_t = self._sb / self._s, self._st / self._s
        var_b = self._sbb / self._s - mean_b * mean_b
        if var_b < 0.25:
            self.alpha, self.beta = 0.0, mean_t / mean_b
            return
        beta = (self._sbt / self._s - mean_b * mean_t) / var_b
        alpha = mean_t - beta * mean_b
        if beta < 0:
            alpha, beta = mean_t, 0.0
        elif alpha < 0:
            alpha, beta = 0.0, self._sbt / self._sbb
        self.alpha, self.beta = alpha, beta

    def seconds(self, size: int) -> float:
        """Expected wall time of a batch of ``size`` requests."""
        return self.alpha + self.beta * size


class InlineTrust:
    """Whether calls may run on the caller's thread: earned by ``after`` calls in a row that each took under
    ``share`` of their budget, lost by any other call (``after`` 0: never earned)."""

    def __init__(self, after: int, share: float) -> None:
        self.after, self.share = after, share
        self._fast = 0  # calls in a row that took under ``share`` of their budget

    @property
    def earned(self) -> bool:
        """The next call may run inline."""
        return self.after > 0 and self._fast >= self.after

    def judge(self, seconds: float, budget_s: float | None) -> bool:
        """Count one call that took ``seconds`` of ``budget_s`` (None: no budget, never fast); whether it was fast."""
        fast = budget_s is not None and seconds < self.share * budget_s
        self._fast = self._fast + 1 if fast else 0
        return fast

    def lose(self) -> None:
        """A call failed or timed out: start counting again."""
        self._fast = 0
