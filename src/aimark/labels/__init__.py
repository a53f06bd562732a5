"""Visible AI notices: wording per jurisdiction and language, comment syntax per file kind, exact removal."""

from aimark.labels.notices import (
    ADVANCE_NOTICE_TEXT,
    ALL_PROFILES,
    DEFAULT_LANGUAGE,
    LANGUAGES,
    NOTICE_TEXT,
    PROFILES,
    WORDING_RULES,
    UnknownProfileError,
    notice_satisfies,
    notice_text,
)
from aimark.labels.syntax import FILE_KINDS, FileKind, UnknownFileKindError, file_kind_for
from aimark.labels.visible import (
    FoundLabel,
    LabelError,
    add_label,
    add_label_text,
    decode_text,
    find_labels,
    remove_label,
    remove_label_text,
    render_label_line,
)

__all__ = [
    "ADVANCE_NOTICE_TEXT",
    "ALL_PROFILES",
    "DEFAULT_LANGUAGE", "LANGUAGES", "NOTICE_TEXT", "PROFILES", "WORDING_RULES", "UnknownProfileError",
    "notice_satisfies", "notice_text", "FILE_KINDS", "FileKind", "UnknownFileKindError", "file_kind_for",
    "FoundLabel", "LabelError", "add_label", "add_label_text", "decode_text", "find_labels", "remove_label",
    "remove_label_text", "render_label_line",
]
