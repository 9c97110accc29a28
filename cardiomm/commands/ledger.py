"""``cardiomm ledger restore``: a site rebuilds its lost privacy ledger from its journal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "ledger"
HELP = (
    "A site's privacy ledger. `ledger restore --policy POLICY` (or --ledger FILE) rebuilds a "
    "deleted ledger from its journal (<ledger>.journal), with every charge it records; it "
    "never overwrites a ledger. Exits 0 when restored, 2 when refused."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    restore = actions.add_parser(
        "restore",
        help="rebuild a missing ledger from its journal",
        description=(
            "Rebuild a missing privacy ledger from its journal: each run's last charge, "
            "checked as every read checks it. Refused when the ledger exists, when there is "
            "no journal, or when the journal is malformed or shows a charge taken back."
        ),
    )
    where = restore.add_mutually_exclusive_group(required=True)
    where.add_argument("--policy", type=Path, help="the site's privacy policy (names the ledger)")
    where.add_argument("--ledger", type=Path, help="the ledger file itself")


def run(args: argparse.Namespace) -> int:
    # Imported here: the ledger's accountant loads Opacus.
    from cardiomm.privacy.ledger import LedgerError, PrivacyLedger
    from cardiomm.privacy.policy import PrivacyPolicyError, read_policy

    try:
        policy = read_policy(args.policy) if args.policy else None
        ledger = PrivacyLedger(policy.ledger if policy else args.ledger)
        runs = ledger.restore()
    except (PrivacyPolicyError, LedgerError) as error:
        print(f"cardiomm {NAME} {args.action}: error: {error}", file=sys.stderr)
        return 2
    steps = sum(accountant.steps for accountant in runs.values())
    spent = f"; epsilon {ledger.total_epsilon(policy.delta):.4g} spent" if policy else ""
    print(
        f"restored {ledger.path} from {ledger.journal}: {len(runs)} run(s), {steps} DP-SGD "
        f"steps{spent}"
    )
    return 0
