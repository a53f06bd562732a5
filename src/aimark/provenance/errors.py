"""One error type for provenance work, carrying a status code a report or the CLI can show."""

from __future__ import annotations


class ProvenanceError(Exception):
    """Writing or reading provenance failed; `code` is a C2PA status code or an `aimark.*` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type when empty), for errors about the caller's own files."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
