"""A site is bound to its node and vendor by the server, not by what a reply says."""

import pytest

from federation.reply_checks import ReplyRefusedError
from server.site_identities import SiteIdentities


def test_a_site_is_bound_to_the_first_node_that_speaks_for_it():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11, 12])
    identities.claim(11, "Center001", "Siemens", connected=[11, 12])
    assert identities.site_of_node == {11: "Center001"}


def test_another_connected_node_cannot_claim_a_bound_site():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11, 12])
    with pytest.raises(ReplyRefusedError, match="site Center001 is played by node 11"):
        identities.claim(12, "Center001", "Siemens", connected=[11, 12])


def test_a_node_cannot_switch_to_another_site():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11, 12])
    with pytest.raises(ReplyRefusedError, match="node 11 speaks for site Center001, not"):
        identities.claim(11, "Center002", "GE", connected=[11, 12])


def test_a_site_cannot_change_its_vendor():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11])
    with pytest.raises(ReplyRefusedError, match="is of vendor Siemens, not GE"):
        identities.claim(11, "Center001", "GE", connected=[11])


def test_a_site_whose_node_left_may_return_on_a_new_node():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11])
    identities.claim(21, "Center001", "Siemens", connected=[21])
    assert identities.site_of_node == {21: "Center001"}


def test_the_consortium_list_refuses_unknown_sites_and_wrong_vendors():
    identities = SiteIdentities({"Center001": "Siemens"})
    with pytest.raises(ReplyRefusedError, match=r"not one of federation\.sites"):
        identities.claim(11, "Center009", "Siemens", connected=[11])
    with pytest.raises(ReplyRefusedError, match="vendor Siemens, not GE"):
        identities.claim(11, "Center001", "GE", connected=[11])


def test_vendor_bindings_survive_a_resume():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11])
    resumed = SiteIdentities()
    resumed.restore(identities.state())
    with pytest.raises(ReplyRefusedError, match="vendor Siemens"):
        resumed.claim(31, "Center001", "GE", connected=[31])


def test_an_unbound_site_claimed_by_two_nodes_at_once_goes_to_neither():
    identities = SiteIdentities()
    for node in (11, 12):
        with pytest.raises(ReplyRefusedError, match="several nodes claim site Center001"):
            identities.claim(node, "Center001", "Siemens", [11, 12], contested={"Center001"})
    assert identities.site_of_node == {}


def test_a_bound_site_stays_with_its_node_when_another_claims_it_too():
    identities = SiteIdentities()
    identities.claim(11, "Center001", "Siemens", connected=[11, 12])
    identities.claim(11, "Center001", "Siemens", [11, 12], contested={"Center001"})
    with pytest.raises(ReplyRefusedError, match="played by node 11"):
        identities.claim(12, "Center001", "Siemens", [11, 12], contested={"Center001"})
