"""The `quanyu` binary the on-demand trials drive (tests/crash, tests/corpus,
tests/scan): `--quanyu PATH` when given, else `$CARGO_TARGET_DIR` (or
`target/`) release, then debug."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def binary(arg):
    if arg:
        return arg
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        p = target / profile / "quanyu"
        if p.exists():
            return str(p)
    sys.exit("no quanyu binary: cargo build -p quanyu (or pass --quanyu)")
