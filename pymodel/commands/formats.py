"""``sbpca formats``: print the named fixed-point format sets (the single source of truth)."""

from __future__ import annotations

import argparse
import json

from ..formats import FORMAT_SETS, get_format_set


def register(sub) -> None:
    p = sub.add_parser("formats", help="list the fixed-point format sets of the SBPCA datapath")
    p.add_argument("name", nargs="?", help="show one set (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sets = [get_format_set(args.name)] if args.name else list(FORMAT_SETS.values())
    if args.json:
        print(json.dumps({s.name: s.to_dict() for s in sets}, indent=2))
        return 0
    for s in sets:
        print(f"{s.name}: norm_guard={s.norm_guard} sigma_min={s.sigma_min:g}")
        for key, fmt in s.items():
            print(f"  {key:<6} {fmt}")
    return 0
