"""Rule authors' commands that are not part of the running service.

python -m authoring valuesets [--check]   rebuild the value sets made from published code lists
python -m authoring validate               clinical validation: every rule version over examples, real records
                                           and the red-flag matrix; exit 1 on a safety failure
"""

from __future__ import annotations

import argparse
import sys


def _valuesets(check: bool) -> int:
    from authoring.published import PUBLISHED
    from authoring.valuesets import outputs, write

    if not PUBLISHED.is_dir():
        print(f"the published code lists are not at {PUBLISHED}", file=sys.stderr)
        return 2
    if check:
        stale = [str(p) for p, content in outputs().items() if not p.is_file() or p.read_text("utf-8") != content]
        for path in stale:
            print(f"out of date: {path} (run `python -m authoring valuesets`)")
        return 1 if stale else 0
    for written in write():
        print(f"wrote {written}")
    return 0


def _validate() -> int:
    from authoring.validation import main

    return main()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m authoring", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    valuesets = commands.add_parser("valuesets", help="rebuild value sets from the published code lists")
    valuesets.add_argument("--check", action="store_true", help="only report files that are out of date")
    commands.add_parser("validate", help="clinical validation report (sensitivity, specificity, disagreements)")
    args = parser.parse_args(argv)
    if args.command == "valuesets":
        return _valuesets(args.check)
    return _validate()


if __name__ == "__main__":
    sys.exit(main())
