"""Server optimisers (FedAdam, FedYogi) compose with vendor weighting and robust reducers."""

import io

import numpy as np
import pytest
import torch
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, FedYogi

from server.settings import FederationSettings
from strategies import (
    VendorAwareFedAdam,
    VendorAwareFedAvg,
    VendorAwareFedProx,
    VendorAwareFedYogi,
)
from strategies.factory import build_strategy
from strategies.server_state import restore_strategy_state, strategy_state
from tests.federation_fakes import federation_config
from tests.strategies.replies import train_reply

CURRENT = {"w": np.zeros(3, np.float32)}
SITES = [("A", 100.0, 1.0), ("A", 100.0, 2.0), ("A", 100.0, 3.0), ("B", 10.0, 9.0)]


def _replies():
    return [
        train_reply(f"site{index}", vendor, examples, {"w": np.full(3, value, np.float32)})
        for index, (vendor, examples, value) in enumerate(SITES)
    ]


def _one_adam_step(strategy):
    # What configure_train records as the arrays the sites start from.
    strategy.current_arrays = {key: value.copy() for key, value in CURRENT.items()}
    new, _ = strategy.aggregate_train(1, _replies())
    return new["w"].numpy()


def test_vendor_aware_fedadam_steps_along_the_vendor_balanced_pseudo_gradient():
    ours = VendorAwareFedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3)
    ours.set_aggregation("equal")
    stepped = _one_adam_step(ours)
    # Adam's first step from 0 with pseudo-gradient d = 5.5 (the vendor-balanced mean):
    # m = 0.1 d, v = 0.01 d^2, eta_norm = 0.1 sqrt(1 - 0.99^2) / (1 - 0.9^2).
    delta = 5.5
    eta_norm = 0.1 * np.sqrt(1 - 0.99**2) / (1 - 0.9**2)
    expected = eta_norm * (0.1 * delta) / (np.sqrt(0.01 * delta**2) + 1e-3)
    np.testing.assert_allclose(stepped, expected, rtol=1e-5)


def test_examples_weighting_gives_flowers_own_fedadam_step():
    ours = VendorAwareFedAdam(eta=0.1, beta_1=0.9, beta_2=0.99).set_aggregation("examples")
    flowers = FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99)
    np.testing.assert_allclose(_one_adam_step(ours), _one_adam_step(flowers), rtol=1e-6)


def test_fedyogi_state_survives_a_checkpoint_round_trip():
    strategy = VendorAwareFedYogi(eta=0.1, beta_1=0.9, beta_2=0.99).set_aggregation("sqrt")
    _one_adam_step(strategy)
    buffer = io.BytesIO()
    torch.save(strategy_state(strategy), buffer)
    buffer.seek(0)
    restored = VendorAwareFedYogi(eta=0.1, beta_1=0.9, beta_2=0.99).set_aggregation("sqrt")
    restore_strategy_state(restored, torch.load(buffer, weights_only=True))
    for moment in ("m_t", "v_t"):
        for key, value in getattr(strategy, moment).items():
            np.testing.assert_array_equal(getattr(restored, moment)[key], value)
    # The next step is the same for the original and the restored strategy.
    np.testing.assert_array_equal(_one_adam_step(restored), _one_adam_step(strategy))


def test_restoring_the_state_of_another_strategy_is_refused():
    with pytest.raises(ValueError, match="same strategy settings"):
        restore_strategy_state(FedYogi(), strategy_state(FedAdam()))


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        (["strategy=fedavg"], FedAvg),
        (["strategy=fedprox"], FedProx),
        (["strategy=fedadam"], FedAdam),
        (["strategy=fedyogi"], FedYogi),
        (["strategy=vendor_balanced"], VendorAwareFedAvg),
        (["strategy=median"], VendorAwareFedAvg),
        (["strategy=fedadam", "strategy.vendor_weighting=equal"], VendorAwareFedAdam),
        (["strategy=fedyogi", "strategy.reducer=trimmed_mean"], VendorAwareFedYogi),
        (["strategy=vendor_balanced", "strategy.proximal_mu=0.1"], VendorAwareFedProx),
    ],
)
def test_the_strategy_class_follows_the_config(tmp_path, overrides, kind):
    strategy = build_strategy(
        FederationSettings.from_config(federation_config(tmp_path, *overrides))
    )
    assert type(strategy) is kind


def test_an_unknown_server_optimizer_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"strategy\.server_optimizer"):
        FederationSettings.from_config(federation_config(tmp_path, "strategy.server_optimizer=sgd"))
