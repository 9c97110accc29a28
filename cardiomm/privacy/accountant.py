"""A site's privacy accountant for DP-SGD, kept across federated rounds.

Opacus' :class:`~opacus.accountants.RDPAccountant` is a list of
``(noise_multiplier, sample_rate, steps)`` entries; epsilon is computed from the whole list.
A ClientApp is called afresh every round, so a new accountant (or a new ``PrivacyEngine``)
each round would report only that round's epsilon. The history therefore travels as three
plain lists (:meth:`SiteAccountant.to_lists`, :meth:`SiteAccountant.from_lists`), which the
ClientApp keeps in its ``context.state`` between rounds (client/privacy_state.py).

The epsilon reported is Opacus' own ``RDPAccountant.get_epsilon`` over that history, so it
is exactly what Opacus would say for the same steps.

Every value is checked before Opacus sees it: finite numbers in range, whole step counts.
Opacus' RDP series for a fractional order loops until a term falls below a bound, and a NaN
noise multiplier (or an infinite one at some rates) never does, so an unchecked value from a
ledger or a node's state would hang the site instead of failing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

_NOISE, _RATE, _STEPS = "noise-multiplier", "sample-rate", "steps"
_ORDERS = RDPAccountant.DEFAULT_ALPHAS


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """``steps`` DP-SGD steps taken with one noise multiplier and sample rate."""

    noise_multiplier: float
    sample_rate: float
    steps: int


class SiteAccountant:
    """The RDP accountant of one site over the whole federated run.

    Args:
        history: earlier entries, oldest first (empty for a site's first round).
    """

    def __init__(self, history: Iterable[HistoryEntry] = ()) -> None:
        self._accountant = RDPAccountant()
        for entry in history:
            _check_entry(entry)
            self._accountant.history.append(
                (float(entry.noise_multiplier), float(entry.sample_rate), int(entry.steps))
            )

    @property
    def history(self) -> list[HistoryEntry]:
        return [HistoryEntry(*entry) for entry in self._accountant.history]

    @property
    def steps(self) -> int:
        """DP-SGD steps taken so far (all rounds)."""
        return sum(entry[2] for entry in self._accountant.history)

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Charge ``steps`` noisy steps (merged into the last entry when it has the same
        noise multiplier and sample rate, as Opacus' ``RDPAccountant.step`` does)."""
        _check_entry(HistoryEntry(noise_multiplier, sample_rate, steps))
        history = self._accountant.history
        if history and history[-1][:2] == (noise_multiplier, sample_rate):
            history[-1] = (history[-1][0], history[-1][1], history[-1][2] + steps)
        elif steps:
            history.append((float(noise_multiplier), float(sample_rate), int(steps)))

    def epsilon(self, delta: float) -> float:
        """Cumulative epsilon for ``delta`` (0 before the first step)."""
        _check_delta(delta)
        return float(self._accountant.get_epsilon(delta=delta))

    def affordable_steps(
        self,
        noise_multiplier: float,
        sample_rate: float,
        delta: float,
        budget: float | None,
        wanted: int,
    ) -> int:
        """How many of ``wanted`` further steps keep the cumulative epsilon within ``budget``.

        Epsilon never decreases with more steps, so a binary search finds the largest
        count. The search adds cached per-step RDP curves (each Opacus evaluation takes tens
        of milliseconds); the answer is then checked with Opacus' own accountant, whose
        epsilon is the one reported. ``budget`` None means no budget: all ``wanted`` steps.
        """
        _check_entry(HistoryEntry(noise_multiplier, sample_rate, wanted), "a planned step")
        _check_delta(delta)
        if budget is not None and (not _is_real(budget) or math.isnan(budget) or budget < 0):
            raise ValueError(f"an epsilon budget must be a number >= 0 or None, got {budget!r}")
        if budget is None or wanted == 0:
            return wanted
        if self.epsilon(delta) > budget:
            return 0
        history = self._accountant.history
        spent = sum(steps * _rdp_per_step(noise, rate) for noise, rate, steps in history)
        per_step = _rdp_per_step(noise_multiplier, sample_rate)
        low, high = 0, wanted
        while low < high:
            middle = (low + high + 1) // 2
            if _epsilon(spent + middle * per_step, delta) <= budget:
                low = middle
            else:
                high = middle - 1
        # Summing per-step curves may differ from Opacus' in the last bits: trust Opacus.
        while low > 0 and self._epsilon_after(noise_multiplier, sample_rate, low, delta) > budget:
            low -= 1
        return low

    def to_lists(self) -> dict[str, list[float] | list[int]]:
        """The history as three equally long lists (noise multipliers, sample rates, steps),
        one entry per index."""
        history = self._accountant.history
        return {
            _NOISE: [float(entry[0]) for entry in history],
            _RATE: [float(entry[1]) for entry in history],
            _STEPS: [int(entry[2]) for entry in history],
        }

    @classmethod
    def from_lists(cls, lists: Mapping[str, Sequence[float]], name: str) -> SiteAccountant:
        """Read what :meth:`to_lists` wrote; malformed lists or values are a ValueError of
        one line naming ``name`` (where they were kept), the entry and the field."""
        missing = [key for key in (_NOISE, _RATE, _STEPS) if key not in lists]
        if missing:
            raise ValueError(f"{name} lacks {', '.join(missing)}")
        for key in (_NOISE, _RATE, _STEPS):
            if not isinstance(lists[key], list | tuple):
                raise ValueError(f"{name}: {key} is a {type(lists[key]).__name__}, not a list")
        noise, rates, steps = (list(lists[key]) for key in (_NOISE, _RATE, _STEPS))
        if not len(noise) == len(rates) == len(steps):
            raise ValueError(
                f"{name} has lists of unequal length ({len(noise)}, {len(rates)}, {len(steps)})"
            )
        entries = [HistoryEntry(n, q, k) for n, q, k in zip(noise, rates, steps, strict=True)]
        for index, entry in enumerate(entries):
            _check_entry(entry, f"{name}: entry {index}", stored=True)
        return cls(entries)

    def _epsilon_after(
        self, noise_multiplier: float, sample_rate: float, extra_steps: int, delta: float
    ) -> float:
        trial = SiteAccountant(self.history)
        trial.step(noise_multiplier, sample_rate, extra_steps)
        return trial.epsilon(delta)


@functools.lru_cache(maxsize=64)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """RDP of one subsampled Gaussian step at each of the accountant's orders."""
    curve = rdp_analysis.compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=_ORDERS
    )
    curve.flags.writeable = False  # cached: shared between calls
    return curve


def _epsilon(rdp: np.ndarray, delta: float) -> float:
    return float(rdp_analysis.get_privacy_spent(orders=_ORDERS, rdp=rdp, delta=delta)[0])


def _check_entry(
    entry: HistoryEntry, where: str = "a DP-SGD accountant entry", stored: bool = False
) -> None:
    """Refuse (ValueError naming ``where`` and the field) a value Opacus cannot account: a
    noise multiplier that is not a finite number >= 0 (> 0 when ``stored``: a recorded step
    always had noise), a sample rate outside (0, 1], a step count that is not a whole
    number >= 0."""
    noise, rate, steps = entry.noise_multiplier, entry.sample_rate, entry.steps
    lowest = "> 0" if stored else ">= 0"
    if not _is_finite(noise) or noise < 0 or (stored and noise == 0):
        raise ValueError(f"{where}: {_NOISE} {noise!r} is not a finite number {lowest}")
    if not _is_finite(rate) or not 0 < rate <= 1:
        raise ValueError(f"{where}: {_RATE} {rate!r} is not a number in (0, 1]")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"{where}: {_STEPS} {steps!r} is not a whole number >= 0")


def _check_delta(delta: float) -> None:
    if not _is_finite(delta) or not 0 < delta < 1:
        raise ValueError(f"a DP-SGD delta must be a number in (0, 1), got {delta!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return _is_real(value) and math.isfinite(value)  # type: ignore[arg-type]
