"""The site record: written once by the ClientApp, read with one fallback everywhere."""

from flwr.app import RecordDict

from federation.protocol import SITE_RECORD, SiteRecord, vendor_of


def test_a_site_record_reads_back_what_was_written():
    written = SiteRecord("Center003", "GE", "GE_15T_SignaArtist", '[{"path": "x"}]')
    content = RecordDict({SITE_RECORD: written.to_record()})
    assert SiteRecord.of(content, node_id=5) == written
    assert vendor_of(content) == "GE"


def test_a_reply_without_a_site_record_is_named_by_its_node():
    record = SiteRecord.of(RecordDict(), node_id=5)
    assert (record.site_id, record.vendor, record.bad_files_json) == ("node-5", "unknown", "[]")
    assert vendor_of(RecordDict()) == "unknown"
