"""The site's round lives in the library: a DP-SGD train task with a privacy policy goes from
client/ into cardiomm/ through the round's one entry point, and the library calls back into
client/ only through what it is handed (tests/package_crossings.py counts the calls)."""

import pytest

from tests.package_crossings import private_train_crossings


@pytest.fixture(scope="module")
def crossings():
    seen, outcome = private_train_crossings()
    assert outcome.error_code == 0, outcome.reason
    return seen


def test_the_task_enters_the_library_only_through_the_site_round(crossings):
    entered = {
        callee
        for (caller, callee) in crossings.edges
        if caller.startswith("client.tasks.") and callee.startswith("cardiomm.")
    }
    assert entered and all(callee.startswith("cardiomm.site_round.") for callee in entered)


def test_the_library_calls_back_into_client_only_through_the_network_builder(crossings):
    back = {callee for (caller, callee) in crossings.edges if caller.startswith("cardiomm.")}
    assert back == {"client.model_cache.ModelCache.__call__"}
