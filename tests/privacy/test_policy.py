"""A site's privacy policy file: what it says, what it refuses, and its errors."""

import pytest

from cardiomm.privacy.policy import (
    PolicyViolationError,
    PrivacyPolicyError,
    check_run,
    read_policy,
    run_budget,
)
from cardiomm.privacy.settings import (
    CentralDPSettings,
    DPSGDSettings,
    PrivacySettings,
    SecureAggregationSettings,
)

POLICY = """\
max_epsilon_per_run: 4.0
max_epsilon_total: 10.0
delta: 1.0e-5
min_noise_multiplier: 0.8
allowed_mechanisms: [dp_sgd, secure_aggregation]
required_mechanisms: [dp_sgd]
unit: patient
ledger: ledger/privacy.json
"""


def _policy(tmp_path, text=POLICY):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return read_policy(path)


def _run(dp=True, noise=1.0, delta=1e-5, central=False, secure=False, unit="patient"):
    return PrivacySettings(
        dp_sgd=DPSGDSettings(enabled=dp, noise_multiplier=noise, delta=delta, unit=unit),
        central_dp=CentralDPSettings(enabled=central),
        secure_aggregation=SecureAggregationSettings(enabled=secure),
    )


def test_the_policy_reads_its_caps_and_finds_the_ledger_beside_it(tmp_path):
    policy = _policy(tmp_path)
    assert (policy.max_epsilon_per_run, policy.max_epsilon_total) == (4.0, 10.0)
    assert policy.required_mechanisms == ("dp_sgd",)
    assert policy.ledger == tmp_path / "ledger" / "privacy.json"


def test_a_run_within_the_policy_is_accepted(tmp_path):
    check_run(_policy(tmp_path), _run(secure=True))


def test_a_run_without_a_required_mechanism_is_refused(tmp_path):
    with pytest.raises(PolicyViolationError, match="requires dp_sgd"):
        check_run(_policy(tmp_path), _run(dp=False))


def test_a_run_with_a_mechanism_the_policy_does_not_allow_is_refused(tmp_path):
    with pytest.raises(PolicyViolationError, match="central_dp, which the site's privacy policy"):
        check_run(_policy(tmp_path), _run(central=True))


def test_a_run_with_less_noise_than_the_policy_allows_is_refused(tmp_path):
    with pytest.raises(PolicyViolationError, match=r"noise multiplier 0\.5 is below the minimum"):
        check_run(_policy(tmp_path), _run(noise=0.5))


def test_a_run_with_a_larger_delta_than_the_policy_accepts_is_refused(tmp_path):
    with pytest.raises(PolicyViolationError, match=r"delta 0\.001 is above"):
        check_run(_policy(tmp_path), _run(delta=1e-3))


def test_a_run_protecting_slices_where_the_policy_requires_patients_is_refused(tmp_path):
    with pytest.raises(PolicyViolationError, match="requires the patient as the unit"):
        check_run(_policy(tmp_path), _run(unit="slice"))


def test_the_per_run_cap_is_the_smaller_of_the_policy_and_the_site_file(tmp_path):
    policy = _policy(tmp_path)
    assert run_budget(policy, 8.0) == 4.0
    assert run_budget(policy, 2.0) == 2.0
    assert run_budget(policy, None) == 4.0


def test_an_unknown_key_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(PrivacyPolicyError, match=r"policy.yaml: unknown key\(s\) max_eps"):
        _policy(tmp_path, POLICY + "max_eps: 3\n")


def test_a_required_mechanism_must_be_allowed(tmp_path):
    text = POLICY.replace("[dp_sgd, secure_aggregation]", "[secure_aggregation]")
    with pytest.raises(PrivacyPolicyError, match="required_mechanisms must also be allowed"):
        _policy(tmp_path, text)


def test_a_negative_cap_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(PrivacyPolicyError, match=r"max_epsilon_total -1\.0 is out of range"):
        _policy(tmp_path, POLICY.replace("max_epsilon_total: 10.0", "max_epsilon_total: -1.0"))


def test_a_policy_without_a_ledger_is_refused(tmp_path):
    with pytest.raises(PrivacyPolicyError, match="ledger must name the ledger file"):
        _policy(tmp_path, POLICY.replace("ledger: ledger/privacy.json\n", ""))


def test_a_missing_policy_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(PrivacyPolicyError, match="no such file"):
        read_policy(tmp_path / "absent.yaml")


def test_a_delta_of_one_promises_nothing_and_is_refused(tmp_path):
    with pytest.raises(PrivacyPolicyError, match=r"delta 1\.0 is out of range"):
        _policy(tmp_path, POLICY.replace("delta: 1.0e-5", "delta: 1.0"))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (DPSGDSettings(enabled=True, noise_multiplier=float("nan")), "dp_sgd.noise_multiplier"),
        (DPSGDSettings(enabled=True, max_grad_norm=float("inf")), "dp_sgd.max_grad_norm"),
        (DPSGDSettings(enabled=True, epsilon_budget=float("nan")), "dp_sgd.epsilon_budget"),
        (DPSGDSettings(enabled=True, target_epsilon=float("nan")), "dp_sgd.target_epsilon"),
        (
            CentralDPSettings(enabled=True, noise_multiplier=float("nan")),
            "central_dp.noise_multiplier",
        ),
        (
            SecureAggregationSettings(enabled=True, clipping_range=float("nan")),
            "secure_aggregation.clipping_range",
        ),
    ],
)
def test_a_run_config_with_a_non_finite_privacy_setting_is_refused(settings, key):
    # NaN passes every range check by comparison; a NaN noise would reach the accountant.
    with pytest.raises(ValueError, match=rf"privacy\.{key} must be a finite number, got (nan|inf)"):
        settings.validate()
