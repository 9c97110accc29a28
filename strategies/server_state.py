"""Save and restore the strategy's server state, for the round checkpoints.

What a resumed run must restore: FedAdam's / FedYogi's moments (``m_t``, ``v_t``; the step
count is the server round, which the checkpoint stores anyway), the central-DP clipping norm
and Flower's privacy accountant, the vendor copies of the personalised parameters, and the
state of a registered strategy that keeps its own (``server_state()`` /
``restore_server_state(state)``, strategies/registry.py). Everything is torch tensors and
text, so a checkpoint loads with ``weights_only``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from flwr.serverapp.strategy import Strategy
from flwr.serverapp.strategy.fedopt import FedOpt

from strategies.wrappers import central_dp_wrapper, inner_strategy, vendor_personalisation

# Where the state of a strategy with its own server_state() is kept.
OWN_STATE = "server_state"
PERSONALISATION_STATE = "personalisation"


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The strategy's server-side state as torch tensors and text (loadable with
    weights_only)."""
    inner = inner_strategy(strategy)
    state: dict[str, Any] = {"class": type(inner).__name__}
    if isinstance(inner, FedOpt):
        state["m_t"] = _to_tensors(inner.m_t)
        state["v_t"] = _to_tensors(getattr(inner, "v_t", None))
    own = getattr(inner, "server_state", None)
    if own is not None:
        state[OWN_STATE] = own()
    dp = central_dp_wrapper(strategy)
    if dp is not None:
        state["wrapper"] = type(dp).__name__
        state["clipping_norm"] = float(dp.clipping_norm)
        accountant = getattr(dp, "accountant", None)
        if accountant is not None:
            state["accountant_json"] = json.dumps(accountant.state_dict())
    personalisation = vendor_personalisation(strategy)
    if personalisation is not None:
        state[PERSONALISATION_STATE] = personalisation.state()
    return state


def restore_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` saved; the classes must be the same."""
    inner = inner_strategy(strategy)
    saved = state.get("class")
    if saved != type(inner).__name__:
        raise ValueError(
            f"the checkpoint was written by strategy {saved}, this run uses "
            f"{type(inner).__name__}; resume with the same strategy settings"
        )
    dp = central_dp_wrapper(strategy)
    wrapper = type(dp).__name__ if dp is not None else None
    if state.get("wrapper") != wrapper:
        raise ValueError(
            f"the checkpoint was written with central DP {state.get('wrapper')}, this run uses "
            f"{wrapper}; resume with the same privacy settings"
        )
    personalisation = vendor_personalisation(strategy)
    if personalisation is not None and PERSONALISATION_STATE not in state:
        raise ValueError(
            "the checkpoint holds no vendor-personalised parameters, this run personalises "
            f"{personalisation.patterns}; resume with the same strategy.personalised"
        )
    if isinstance(inner, FedOpt):
        inner.m_t = _to_numpy(state.get("m_t"))
        inner.v_t = _to_numpy(state.get("v_t"))
    own = getattr(inner, "restore_server_state", None)
    if own is not None:
        own(state.get(OWN_STATE, {}))
    if dp is not None:
        dp.clipping_norm = float(state["clipping_norm"])
        accountant = getattr(dp, "accountant", None)
        if accountant is not None and "accountant_json" in state:
            accountant.load_state_dict(json.loads(state["accountant_json"]))
    if personalisation is not None:
        personalisation.restore(state[PERSONALISATION_STATE])


def _to_tensors(arrays: dict[str, np.ndarray] | None) -> dict[str, torch.Tensor] | None:
    if arrays is None:
        return None
    return {key: torch.from_numpy(np.array(value, copy=True)) for key, value in arrays.items()}


def _to_numpy(tensors: dict[str, torch.Tensor] | None) -> dict[str, np.ndarray] | None:
    if tensors is None:
        return None
    return {key: value.numpy().copy() for key, value in tensors.items()}
