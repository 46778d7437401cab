"""``python -m glass_factory build [--quick] [--only NAME[,NAME]] [--seed S] [--trials N] [--models-dir DIR]
[--work-dir DIR] [--threads N]`` — see models/factory/README.md."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] != "build":
        print(f"unknown command {argv[0]!r}; the only command is: build", file=sys.stderr)
        return 2
    from .build import build

    return build(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
