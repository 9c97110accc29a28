"""The privacy error a site's task is answered with, importable without Opacus (a ClientApp
that trains without DP-SGD never loads it)."""

from __future__ import annotations


class PrivacyBudgetSpentError(RuntimeError):
    """Raised instead of training when not one more DP-SGD step fits in the budget."""

    def __init__(
        self, epsilon: float, budget: float, delta: float, steps: int, scope: str = "run"
    ) -> None:
        self.epsilon, self.budget, self.delta, self.steps = epsilon, budget, delta, steps
        self.scope = scope
        super().__init__(
            f"privacy budget spent ({scope}): epsilon {epsilon:.4g} of {budget:.4g} (delta "
            f"{delta:.3g}) after {steps} DP-SGD steps; one more step would pass the budget, "
            "so no training"
        )
