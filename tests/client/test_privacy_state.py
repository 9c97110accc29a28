"""A site's DP-SGD accountant kept in the ClientApp's context.state between rounds."""

import pytest
from flwr.app import ConfigRecord, MetricRecord, RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto

from cardiomm.privacy.accountant import SiteAccountant
from client.privacy_state import ACCOUNTANT_RECORD, load_accountant, store_accountant

DELTA = 1e-5


def _site_accountant() -> SiteAccountant:
    accountant = SiteAccountant()
    for noise, rate, steps in [(1.0, 0.05, 20), (0.8, 1 / 18, 7)]:
        accountant.step(noise, rate, steps)
    return accountant


def test_the_history_survives_a_round_trip_through_context_state_and_the_wire():
    state = RecordDict()
    store_accountant(state, _site_accountant())
    # A deployed SuperNode serialises the context between rounds.
    state = recorddict_from_proto(recorddict_to_proto(state))
    restored = load_accountant(state)
    assert restored.history == _site_accountant().history
    assert restored.epsilon(DELTA) == _site_accountant().epsilon(DELTA)


def test_a_node_without_a_stored_history_starts_a_fresh_accountant():
    assert load_accountant(RecordDict()).history == []


def test_a_malformed_accountant_record_is_an_error_naming_it():
    state = RecordDict({ACCOUNTANT_RECORD: MetricRecord({"noise-multiplier": [1.0]})})
    with pytest.raises(ValueError, match=f"{ACCOUNTANT_RECORD}.*lacks sample-rate, steps"):
        load_accountant(state)
    state = RecordDict({ACCOUNTANT_RECORD: ConfigRecord({"steps": "many"})})
    with pytest.raises(ValueError, match="ConfigRecord, not the MetricRecord"):
        load_accountant(state)


def test_a_non_finite_value_in_the_stored_history_is_an_error_naming_the_record_and_field():
    lists = {"noise-multiplier": [float("nan")], "sample-rate": [0.05], "steps": [3]}
    state = RecordDict({ACCOUNTANT_RECORD: MetricRecord(lists)})
    with pytest.raises(ValueError, match=f"{ACCOUNTANT_RECORD}.*entry 0: noise-multiplier nan"):
        load_accountant(state)
