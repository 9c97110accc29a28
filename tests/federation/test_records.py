"""A round's record: the history.json layout written and read back through typed records."""

import json

import pytest

from federation.records import RoundRecord, SiteRound, read_history, write_history

RECORD = {
    "round": 2,
    "train": {"loss": 0.4, "num-examples": 24.0},
    "evaluate": {"psnr": 31.0},
    "aggregation": {"train": "ok", "evaluate": "ok", "weights": {"Center001": 1.0}},
    "sites": {
        "Center001": {
            "node-id": 7,
            "vendor": "Siemens",
            "scanner": "Siemens_30T_Vida",
            "bad-files": [],
            "train": {"loss": 0.4},
            "aggregation-weight": 1.0,
            "bytes-sent": 10,
            "bytes-received": 12,
            "evaluate": {"psnr": 31.0},
        },
        "Center002": {"node-id": 8, "evaluate": {"psnr": 30.0}},
    },
    "errors": [{"phase": "train", "node-id": 8, "code": 1, "reason": "site Center002: bad"}],
    "rejected": [],
    "timing": {"round-seconds": 3.0},
    "traffic": {"bytes-per-site": 10},
    "global": {"held-out/psnr": 29.0},
}


def test_a_record_reads_and_writes_the_history_layout_unchanged():
    assert RoundRecord.from_json(RECORD).to_json() == RECORD


def test_fields_are_named():
    record = RoundRecord.from_json(RECORD)
    assert record.round == 2
    assert record.sites["Center001"].vendor == "Siemens"
    assert record.sites["Center001"].train_fields == {"aggregation-weight": 1.0}
    assert record.sites["Center002"].train is None
    assert record.global_scores == {"held-out/psnr": 29.0}


def test_sites_are_written_in_site_order_whatever_order_they_came_in():
    record = RoundRecord(round=1, sites={"b": SiteRound(node_id=2), "a": SiteRound(node_id=1)})
    assert list(record.to_json()["sites"]) == ["a", "b"]


def test_a_history_file_round_trips(tmp_path):
    path = write_history(tmp_path / "history.json", [RoundRecord.from_json(RECORD)])
    assert [record.to_json() for record in read_history(path)] == [RECORD]


def test_a_file_that_is_not_a_history_is_named(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"round": 1}))
    with pytest.raises(ValueError, match=r"history\.json: not a federation history"):
        read_history(path)
    path.write_text(json.dumps([{"sites": {}}]))
    with pytest.raises(ValueError, match=r"history\.json: a round record is malformed"):
        read_history(path)
