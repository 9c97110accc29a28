"""Central (site-level) DP through Flower's DifferentialPrivacy*Clipping wrappers."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
)
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from client.central_dp import central_dp_clipping_mod
from federation.records import history_to_json
from server.rounds import run_federation
from server.settings import FederationSettings
from strategies.factory import build_strategy
from strategies.wrappers import inner_strategy
from tests.federation_fakes import (
    InProcessGrid,
    fake_site_app,
    federation_config,
    make_message,
    simulation_node_configs,
    stopped_after,
)


def _run(output, rounds, *overrides):
    config = federation_config(
        output, f"federation.num_rounds={rounds}", "privacy=central_dp", *overrides
    )
    return run_federation(config, InProcessGrid(fake_site_app(), simulation_node_configs(3)))


def _strategy(tmp_path, *overrides):
    config = federation_config(tmp_path, "privacy=central_dp", *overrides)
    return build_strategy(FederationSettings.from_config(config))


@pytest.mark.parametrize(
    ("overrides", "wrapper"),
    [
        ((), DifferentialPrivacyServerSideFixedClipping),
        (("privacy.central_dp.side=client",), DifferentialPrivacyClientSideFixedClipping),
        (("privacy.central_dp.clipping=adaptive",), DifferentialPrivacyServerSideAdaptiveClipping),
    ],
)
def test_the_configured_wrapper_surrounds_the_strategy(tmp_path, overrides, wrapper):
    strategy = _strategy(tmp_path, *overrides)
    assert type(strategy) is wrapper


def test_flowers_accountant_reports_a_growing_epsilon_over_rounds(tmp_path):
    result = _run(tmp_path, 3, "federation.min_sites=3")
    epsilons = [
        record["aggregation"]["central-dp-epsilon"] for record in history_to_json(result.history)
    ]
    assert all(epsilon > 0 for epsilon in epsilons)
    assert epsilons == sorted(epsilons) and epsilons[0] < epsilons[-1]
    assert history_to_json(result.history)[0]["aggregation"]["central-dp-delta"] == 1e-5


def test_no_epsilon_is_claimed_where_flowers_accountant_does_not_apply(tmp_path):
    strategy = _strategy(tmp_path, "strategy=fedadam", "federation.min_sites=3")
    assert isinstance(inner_strategy(strategy), FedAdam)
    assert strategy.accountant is None
    result = _run(tmp_path, 1, "strategy=fedadam", "federation.min_sites=3")
    assert "central-dp-epsilon" not in history_to_json(result.history)[0]["aggregation"]


def test_the_noise_moves_the_model_away_from_the_plain_aggregate(tmp_path):
    noisy = _run(tmp_path / "noisy", 1, "federation.min_sites=3")
    clipped_only = _run(
        tmp_path / "clipped", 1, "federation.min_sites=3", "privacy.central_dp.noise_multiplier=0"
    )
    difference = max(
        float((noisy.arrays[key] - clipped_only.arrays[key]).abs().max()) for key in noisy.arrays
    )
    assert difference > 1e-3


def test_a_resumed_run_continues_the_accountant(tmp_path):
    # The noise itself is not reproducible on purpose (nothing saved predicts it).
    straight = _run(tmp_path / "straight", 3, "federation.min_sites=3")
    with stopped_after(2):
        _run(tmp_path / "resumed", 3, "federation.min_sites=3")
    resumed = _run(tmp_path / "resumed", 3, "federation.min_sites=3", "federation.resume=true")
    assert resumed.rounds == [3]
    assert history_to_json(resumed.history)[-1]["aggregation"][
        "central-dp-epsilon"
    ] == pytest.approx(
        history_to_json(straight.history)[-1]["aggregation"]["central-dp-epsilon"], rel=1e-12
    )


def test_central_dp_with_personalised_parameters_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"strategy\.personalised"):
        FederationSettings.from_config(
            federation_config(
                tmp_path,
                "privacy=central_dp",
                "strategy=vendor_personalised",
                "text=minilm",
            )
        )


def _train_message(config: dict) -> Message:
    arrays = ArrayRecord({"w": Array(np.zeros(4, np.float32))})
    return make_message(
        RecordDict({"arrays": arrays, "config": ConfigRecord(config)}), "train", dst_node_id=1
    )


def _site_moves_weights_by(step: float):
    def train(msg: Message, context: Context) -> Message:
        content = RecordDict(
            {
                "arrays": ArrayRecord({"w": Array(np.full(4, step, np.float32))}),
                "metrics": MetricRecord({"num-examples": 1.0}),
                "site": ConfigRecord({"site-id": "Center001"}),
            }
        )
        return Message(content=content, reply_to=msg)

    return train


def _context() -> Context:
    return Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})


def test_the_site_clips_its_update_when_the_server_sends_a_clipping_norm():
    message = _train_message({"server-round": 1, KEY_CLIPPING_NORM: 1.0})
    reply = central_dp_clipping_mod(message, _context(), _site_moves_weights_by(3.0))
    assert np.linalg.norm(reply.content["arrays"]["w"].numpy()) == pytest.approx(1.0, rel=1e-5)


def test_without_a_clipping_norm_the_update_passes_unchanged():
    reply = central_dp_clipping_mod(
        _train_message({"server-round": 1}), _context(), _site_moves_weights_by(3.0)
    )
    np.testing.assert_array_equal(reply.content["arrays"]["w"].numpy(), np.full(4, 3.0))
