"""The typer application object shared by the command modules."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="aimark",
    help="Watermark, label and verify AI-generated text and code.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
