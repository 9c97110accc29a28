"""Fixtures of the privacy tests: a small consortium's composed federation config."""

import pytest

from federation.config import compose_overrides
from tests.builders import write_consortium


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return compose_overrides(f"data.root={root} data.synthetic_preset=null text=none")
