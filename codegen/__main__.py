"""``python -m codegen [--check] [--spec PATH] [--output PATH]``"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from codegen import OUTPUT_PATH, SPEC_PATH, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--spec", type=Path, default=SPEC_PATH, help="AsyncAPI file")
    parser.add_argument("--output", type=Path, default=OUTPUT_PATH, help="module path")
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the output file is missing or out of date",
    )
    args = parser.parse_args(argv)
    generated = render(args.spec)
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current == generated:
            print(f"{args.output}: up to date")
            return 0
        diff = difflib.unified_diff(
            (current or "").splitlines(keepends=True),
            generated.splitlines(keepends=True),
            f"{args.output} (on disk)",
            f"{args.output} (generated)",
        )
        sys.stderr.writelines(list(diff)[:40])
        print(f"{args.output} is out of date: run `python -m codegen`", file=sys.stderr)
        return 1
    if current == generated:
        print(f"{args.output}: unchanged")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(generated, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
