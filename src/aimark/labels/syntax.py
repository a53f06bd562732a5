"""How each kind of file carries a one-line notice: comment syntax per programming language.

A file kind is found from the file name's extension, or named outright (`--lang-code`). Documents
(plain text, Markdown) carry the notice as visible text, since a comment there would hide it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from aimark.languages import EXTENSIONS


@dataclass(frozen=True)
class FileKind:
    """How a notice line is written in one kind of file.

    `prefix`/`suffix` wrap the notice (a line or block comment). `visible_document` is True for
    prose formats where the notice must stay visible to a reader. `preamble` matches lines that must
    stay first (shebang, PEP 263 encoding line, XML declaration, `<?php`, doctype): a notice at the
    start goes after them. `blank_line_separator` surrounds the notice with a blank line where the
    format would otherwise merge it with the neighbouring paragraph (Markdown's lazy continuation).
    """

    name: str
    prefix: str
    suffix: str = ""
    visible_document: bool = False
    preamble: tuple[re.Pattern[str], ...] = ()
    blank_line_separator: bool = False


_SHEBANG = re.compile(r"^#!")
# PEP 263: a magic comment on line 1 or 2 matching this expression declares the source encoding.
_PEP263_ENCODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-_.a-zA-Z0-9]+")
_XML_DECLARATION = re.compile(r"^<\?xml\b")
_PHP_OPEN_TAG = re.compile(r"^<\?php\b|^<\?=")
_HTML_DOCTYPE = re.compile(r"^<!DOCTYPE\b", re.I)

_HASH = "# "
_SLASHES = "// "

FILE_KINDS: dict[str, FileKind] = {
    kind.name: kind
    for kind in (
        FileKind("text", "", visible_document=True),
        # Markdown keeps the notice visible; the marker travels in an HTML comment that renders as nothing.
        FileKind("markdown", "", visible_document=True, blank_line_separator=True),
        FileKind("python", _HASH, preamble=(_SHEBANG, _PEP263_ENCODING)),
        FileKind("javascript", _SLASHES, preamble=(_SHEBANG,)),
        FileKind("typescript", _SLASHES, preamble=(_SHEBANG,)),
        FileKind("java", _SLASHES),
        # C89 has no line comments, so C uses a block comment; C++ uses //.
        FileKind("c", "/* ", " */"),
        FileKind("cpp", _SLASHES),
        FileKind("csharp", _SLASHES),
        FileKind("go", _SLASHES),
        FileKind("rust", _SLASHES, preamble=(_SHEBANG,)),
        FileKind("kotlin", _SLASHES, preamble=(_SHEBANG,)),
        FileKind("swift", _SLASHES, preamble=(_SHEBANG,)),
        FileKind("ruby", _HASH, preamble=(_SHEBANG, _PEP263_ENCODING)),
        # Text before `<?php` would be sent to the browser, so the comment goes inside the PHP block.
        FileKind("php", _SLASHES, preamble=(_SHEBANG, _PHP_OPEN_TAG)),
        FileKind("shell", _HASH, preamble=(_SHEBANG,)),
        FileKind("perl", _HASH, preamble=(_SHEBANG,)),
        FileKind("r", _HASH, preamble=(_SHEBANG,)),
        FileKind("sql", "-- "),
        FileKind("lua", "-- ", preamble=(_SHEBANG,)),
        FileKind("haskell", "-- "),
        FileKind("html", "<!-- ", " -->", preamble=(_HTML_DOCTYPE,)),
        FileKind("xml", "<!-- ", " -->", preamble=(_XML_DECLARATION,)),
        FileKind("css", "/* ", " */"),
        FileKind("scss", _SLASHES),
        FileKind("yaml", _HASH),
        FileKind("toml", _HASH),
        FileKind("ini", "; "),
        FileKind("dockerfile", _HASH),
        FileKind("makefile", _HASH),
        FileKind("powershell", _HASH, preamble=(_SHEBANG,)),
    )
}


_WHOLE_FILE_NAMES: dict[str, str] = {"dockerfile": "dockerfile", "makefile": "makefile", "gnumakefile": "makefile"}


class UnknownFileKindError(ValueError):
    """No comment syntax is known for the file (and none was named)."""


def file_kind_for(filename: str | None, lang_code: str | None = None) -> FileKind:
    """The file kind named by `lang_code`, else the one the file name implies (plain text when unnamed)."""
    if lang_code:
        key = lang_code.lower()
        key = EXTENSIONS.get("." + key.lstrip("."), key) if key not in FILE_KINDS else key
        if key not in FILE_KINDS:
            raise UnknownFileKindError(
                f"unknown language code {lang_code!r}; known: {', '.join(sorted(FILE_KINDS))}"
            )
        return FILE_KINDS[key]
    if not filename or filename == "-":
        return FILE_KINDS["text"]
    path = PurePath(filename)
    if path.name.lower() in _WHOLE_FILE_NAMES:
        return FILE_KINDS[_WHOLE_FILE_NAMES[path.name.lower()]]
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise UnknownFileKindError(
            f"no comment syntax known for {path.name!r}; pass --lang-code (one of {', '.join(sorted(FILE_KINDS))})"
        )
    return FILE_KINDS[EXTENSIONS[suffix]]
