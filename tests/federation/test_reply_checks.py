"""Every field of a reply is checked: type, range, known keys; free text sanitised."""

import json
import math

import pytest
from flwr.app import ConfigRecord, MetricRecord, RecordDict

from federation.reply_checks import (
    EVALUATE,
    ROLL_CALL,
    TRAIN,
    ZERO_SHOT,
    ReplyLimits,
    ReplyRefusedError,
    bad_file_list,
    check_reply,
    clean_text,
)

LIMITS = ReplyLimits(max_examples=1000, max_text=40, max_bad_files=2)


def reply(metrics=None, **site):
    fields = {"site-id": "Center001", "vendor": "Siemens", "scanner": "Vida", **site}
    return RecordDict(
        {
            "metrics": MetricRecord({"num-examples": 10.0, "loss": 0.5, **(metrics or {})}),
            "site": ConfigRecord(fields),
        }
    )


def refusal(content, phase=TRAIN):
    with pytest.raises(ReplyRefusedError) as caught:
        check_reply(content, phase, LIMITS)
    return str(caught.value)


def test_a_well_formed_train_reply_is_accepted_with_its_metrics_as_floats():
    checked = check_reply(reply({"steps": 5}), TRAIN, LIMITS)
    assert checked.metrics == {"num-examples": 10.0, "loss": 0.5, "steps": 5.0}
    assert checked.site.site_id == "Center001"
    assert checked.site.vendor == "Siemens"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "is NaN"),
        (math.inf, "is infinite"),
        (-5.0, "outside [1, 1000]"),
        (0.0, "outside [1, 1000]"),
        (2.5, "whole number"),
        (1e9, "outside [1, 1000]"),
    ],
)
def test_num_examples_must_be_a_whole_number_between_one_and_the_bound(value, problem):
    assert problem in refusal(reply({"num-examples": value}))


def test_an_evaluate_reply_may_report_zero_examples():
    content = reply({"psnr": math.nan, "ssim": math.nan, "nmse": math.nan})
    del content["metrics"]["loss"]
    content["metrics"]["num-examples"] = 0.0
    assert check_reply(content, EVALUATE, LIMITS).metrics["num-examples"] == 0.0


def test_a_missing_num_examples_is_refused():
    content = reply()
    del content["metrics"]["num-examples"]
    assert "missing metric(s) 'num-examples'" in refusal(content)


def test_an_unknown_metric_is_refused_by_name():
    assert "unknown metric(s) 'weight-boost'" in refusal(reply({"weight-boost": 1.0}))


def test_a_list_valued_metric_is_refused():
    assert "must be a number, got list" in refusal(reply({"loss": [0.1, 0.2]}))


def test_a_negative_timing_is_refused():
    assert "'train-seconds' is -1" in refusal(reply({"train-seconds": -1.0}))


def test_nan_is_allowed_where_a_site_has_nothing_to_report():
    checked = check_reply(reply({"loss": math.nan, "val-psnr": math.nan}), TRAIN, LIMITS)
    assert math.isnan(checked.metrics["val-psnr"])


def test_an_ssim_above_one_is_refused():
    assert "'val-ssim' is 1.5" in refusal(reply({"val-ssim": 1.5}))


def test_a_reply_without_a_site_record_is_refused():
    content = reply()
    del content["site"]
    assert "no 'site' record" in refusal(content)


@pytest.mark.parametrize("site_id", ["", "<b>Center001</b>", "a" * 80, "Center 1"])
def test_a_malformed_site_id_is_refused(site_id):
    assert "site-record field 'site-id'" in refusal(reply(**{"site-id": site_id}))


def test_a_non_text_vendor_is_refused():
    assert "site-record field 'vendor'" in refusal(reply(vendor=3))


def test_an_unknown_site_record_field_is_refused():
    assert "unknown site-record field(s) 'admin'" in refusal(reply(admin="yes"))


def test_free_text_loses_markup_and_is_cut_to_the_limit():
    checked = check_reply(reply(scanner="<script>alert(1)</script>" * 3), TRAIN, LIMITS)
    assert "<" not in checked.site.scanner
    assert len(checked.site.scanner) == LIMITS.max_text


def test_clean_text_keeps_printable_ascii_only():
    assert clean_text("a\x00b\nc\u00e9<d>", 100) == "a?b?c??d?"


def test_the_bad_file_list_is_sanitised_and_capped_with_a_count_of_the_rest():
    entries = [{"path": f"/data/<i>{index}</i>.mat", "reason": "truncated"} for index in range(5)]
    kept = bad_file_list(json.dumps(entries), LIMITS)
    assert kept[:2] == [
        {"path": "/data/?i?0?/i?.mat", "reason": "truncated"},
        {"path": "/data/?i?1?/i?.mat", "reason": "truncated"},
    ]
    assert kept[2] == {"path": "", "reason": "3 more skipped file(s) not listed"}


def test_an_unreadable_bad_file_list_is_recorded_as_such():
    assert bad_file_list("[{not json", LIMITS) == [
        {"path": "", "reason": "the site's list of skipped files is not valid JSON"}
    ]


def test_limits_refuse_a_share_outside_zero_to_one():
    with pytest.raises(ValueError, match="max_site_share"):
        ReplyLimits(max_site_share=1.5).validate()


def zero_shot_reply(**breakdown):
    metrics = {"num-examples": 4.0, "psnr": 30.0, "ssim": 0.9, "nmse": 0.01, **breakdown}
    return RecordDict(
        {
            "metrics": MetricRecord(metrics),
            "site": ConfigRecord({"site-id": "Center005", "vendor": "GE", "role": "evaluate"}),
        }
    )


def test_a_zero_shot_reply_may_carry_scores_per_modality_view_and_setting():
    group = "cine.short-axis.ktRadial24"
    checked = check_reply(
        zero_shot_reply(**{f"psnr/{group}": 31.0, f"images/{group}": 4.0}), ZERO_SHOT, LIMITS
    )
    assert checked.metrics[f"psnr/{group}"] == 31.0
    assert checked.site.role == "evaluate"


def test_breakdown_scores_are_refused_outside_a_zero_shot_reply():
    content = zero_shot_reply(**{"psnr/cine.short-axis.ktRadial24": 31.0})
    assert "unknown metric(s) 'psnr/cine.short-axis.ktRadial24'" in refusal(content, EVALUATE)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("psnr/cine.short-axis", 30.0, "unknown metric"),  # two parts, not three
        ("psnr/<b>.x.y", 30.0, "unknown metric"),
        ("loss/cine.short-axis.Uniform8", 0.1, "unknown metric"),
        ("ssim/cine.short-axis.Uniform8", 3.0, "outside [-1, 1]"),
        ("images/cine.short-axis.Uniform8", 0.5, "whole number"),
    ],
)
def test_a_malformed_or_out_of_range_breakdown_score_is_refused(key, value, problem):
    assert problem in refusal(zero_shot_reply(**{key: value}), ZERO_SHOT)


def test_a_zero_shot_reply_with_too_many_groups_is_refused():
    limits = ReplyLimits(max_breakdown_groups=2)
    groups = {f"psnr/cine.view{index}.Uniform8": 30.0 for index in range(3)}
    with pytest.raises(ReplyRefusedError, match="3 breakdown groups"):
        check_reply(zero_shot_reply(**groups), ZERO_SHOT, limits)


def test_a_roll_call_reply_carries_no_metrics_and_a_known_role():
    site = ConfigRecord({"site-id": "Center005", "vendor": "GE", "role": "evaluate"})
    assert check_reply(RecordDict({"site": site}), ROLL_CALL, LIMITS).metrics == {}
    site["role"] = "aggregator"
    assert "'role' must be one of train, evaluate" in refusal(RecordDict({"site": site}), ROLL_CALL)
