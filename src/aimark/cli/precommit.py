"""The opt-in `aimark-label` pre-commit hook: label each staged file that has no aimark notice yet.

    python -m aimark.cli.precommit --profile kr FILE...

Run by pre-commit with the staged file names. Like every fixing hook it exits 1 when it changed a file, so
the commit stops and the labelled files can be reviewed and staged; files already labelled, and kinds aimark
does not label, are left as they are. Writes are atomic (aimark.files.write_atomic).
"""

from __future__ import annotations

import argparse
import sys

from aimark.cli.io import MAX_INPUT_BYTES
from aimark.cli.tree import is_known_kind
from aimark.files import write_atomic
from aimark.labels import (
    LabelError,
    UnknownFileKindError,
    UnknownProfileError,
    add_label,
    file_kind_for,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aimark-label", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="kr, cn, eu or all")
    parser.add_argument("--lang", default=None, help="notice language: ko, ja, zh or en (default: the profile's)")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    changed, failed = 0, 0
    for name in args.files:
        if not is_known_kind(name) or name.lower().endswith((".pdf", ".docx", ".docm")):
            continue
        try:
            with open(name, "rb") as handle:
                content = handle.read(MAX_INPUT_BYTES + 1)
            if len(content) > MAX_INPUT_BYTES:
                raise LabelError(f"larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB")
            labelled = add_label(content, file_kind_for(name), args.profile, args.lang)
        except UnknownProfileError as err:
            print(f"aimark-label: {err}", file=sys.stderr)
            return 2
        except LabelError as err:
            if "already carries an aimark label" in str(err):
                continue
            print(f"aimark-label: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        except (OSError, UnknownFileKindError) as err:
            print(f"aimark-label: {name}: {getattr(err, 'strerror', None) or err}", file=sys.stderr)
            failed += 1
            continue
        write_atomic(name, labelled)
        print(f"labelled {name}")
        changed += 1
    return 2 if failed else (1 if changed else 0)


if __name__ == "__main__":
    sys.exit(main())
