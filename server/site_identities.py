"""Which Flower node plays which site: bound by the server, not taken from each reply.

A reply says who its site is; a hostile site could claim another's name (and vendor) and
have its numbers recorded, and its update weighted, as that site's. The server therefore
binds each site to the first node that speaks for it and to the vendor it first gave (or to
``federation.sites``, the consortium's list, when the coordinator has one), and refuses:

- a reply naming a site other than the one its node is bound to;
- a reply naming a site bound to another node that is still connected;
- a reply giving a site a vendor other than its bound one;
- with ``federation.sites``, a reply naming a site not on the list.

A site whose node is gone (a restarted SuperNode, a resumed run) may come back on a new
node: the binding follows it. The site -> vendor bindings are kept in the round checkpoints,
so a resumed run keeps them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from federation.reply_checks import ReplyRefusedError


class SiteIdentities:
    """The node -> site and site -> vendor bindings of a run.

    Args:
        expected: the consortium's sites and their vendors (``federation.sites``); empty:
            any well-formed site may join, bound at its first reply.
    """

    def __init__(self, expected: Mapping[str, str] | None = None) -> None:
        self.expected = dict(expected or {})
        self.vendors: dict[str, str] = dict(self.expected)
        self.site_of_node: dict[int, str] = {}

    def claim(
        self,
        node_id: int,
        site_id: str,
        vendor: str,
        connected: Iterable[int],
        contested: Collection[str] = (),
    ) -> None:
        """Accept that ``node_id`` speaks for ``site_id`` of ``vendor``, binding them if new.

        Args:
            connected: the node ids connected now (a site bound to a node that left may move).
            contested: sites that several nodes claim in the same exchange; one of them not
                bound to a connected node is bound to none of the claimants (first come
                would hand it to whichever reply the server read first).

        Raises:
            ReplyRefusedError: the claim contradicts a binding or the consortium's list.
        """
        if self.expected and site_id not in self.expected:
            raise ReplyRefusedError(f"site {site_id} is not one of federation.sites")
        bound_site = self.site_of_node.get(node_id)
        if bound_site is not None and bound_site != site_id:
            raise ReplyRefusedError(f"node {node_id} speaks for site {bound_site}, not {site_id}")
        holders = [node for node, site in self.site_of_node.items() if site == site_id]
        live = set(connected)
        others = [node for node in holders if node != node_id and node in live]
        if others:
            raise ReplyRefusedError(f"site {site_id} is played by node {others[0]}")
        if site_id in contested and node_id not in holders:
            raise ReplyRefusedError(
                f"several nodes claim site {site_id} at once; none is bound to it until one "
                "claims it alone"
            )
        bound_vendor = self.vendors.get(site_id)
        if bound_vendor is not None and bound_vendor != vendor:
            raise ReplyRefusedError(f"site {site_id} is of vendor {bound_vendor}, not {vendor}")
        for node in holders:  # the site's old node is gone: it moves to this one
            del self.site_of_node[node]
        self.site_of_node[node_id] = site_id
        self.vendors[site_id] = vendor

    def state(self) -> dict[str, Any]:
        """What a round checkpoint keeps: the site -> vendor bindings (node ids change when
        a run is resumed)."""
        return {"vendors": dict(sorted(self.vendors.items()))}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back the bindings of :meth:`state`."""
        self.vendors.update({str(site): str(vendor) for site, vendor in state["vendors"].items()})
