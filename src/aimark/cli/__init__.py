"""The `aimark` command line: a door into the library, never imported by it."""

from aimark.cli.app import app, main

# Each module registers its commands on `app` when imported.
from aimark.cli import core_commands as _core_commands  # noqa: F401,E402
from aimark.cli import label_commands as _label_commands  # noqa: F401,E402
from aimark.cli import serve_commands as _serve_commands  # noqa: F401,E402
from aimark.cli import compliance_commands as _compliance_commands  # noqa: F401,E402

__all__ = ["app", "main"]
