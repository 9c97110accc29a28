"""``cardiomm check-site``: a site checks its data, config and machine before it joins."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "check-site"
HELP = (
    "Check a site before it joins: files found, readable and skipped; images per modality, "
    "view and vendor; matrices and coils; metadata; disk; GPU; seconds per local step; the "
    "site config; every path under the data that cannot be used (symlink loop, dangling "
    "symlink, permission denied). Prints a table, writes JSON, exits 1 when the site cannot "
    "take part (an unusable path included). "
    "Nothing is sent anywhere."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-path", type=Path, help="the site's data root (default: data.root of --site-config)"
    )
    parser.add_argument(
        "--site-id", help="the centre this site plays (default: the only one under the root)"
    )
    parser.add_argument(
        "--role", default="train", help="train (default) or evaluate (an evaluation-only site)"
    )
    parser.add_argument("--site-config", type=Path, help="the site's own YAML file")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("site-check.json"),
        help="where to write the findings (default ./site-check.json)",
    )
    parser.add_argument(
        "--timing-steps",
        type=int,
        default=3,
        help="local steps (or images) to time after one warm-up (0: no timing; default 3)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="the coordinator's recipe to time with, as Hydra overrides (e.g. model=small)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cardiomm.progress import make_console
    from client.site_check import PROBLEM, WARNING, CheckRequest, check_site

    request = CheckRequest(
        data_path=args.data_path,
        site_id=args.site_id,
        role=args.role,
        site_config=args.site_config,
        overrides=tuple(args.overrides),
        timing_steps=args.timing_steps,
        output_dir=args.json.parent,
    )
    check = check_site(request)
    table = Table(title=f"site check: {check.details.get('site', args.site_id or '?')}")
    for column in ("check", "found", "status"):
        table.add_column(column)
    style = {PROBLEM: "bold red", WARNING: "yellow"}
    for finding in check.findings:
        table.add_row(finding.item, finding.value, finding.status, style=style.get(finding.status))
    console = make_console()
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(check.to_json(), indent=2, default=str))
    unreadable = check.details.get("unreadable-paths", [])
    if unreadable:
        console.print(
            f"{len(unreadable)} path(s) under the data could not be used and were skipped "
            "(the 'unreadable path' rows): fix their permissions or links, or move them out "
            "of the data root"
        )
    verdict = "can take part" if check.can_take_part else "cannot take part (see problem rows)"
    console.print(f"the site {verdict}; findings written to {args.json} (nothing was sent)")
    return 0 if check.can_take_part else 1
