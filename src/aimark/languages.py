"""File extensions -> language names, shared by labels (comment syntax) and the code scheme (lexical gate).

A leaf module (imports nothing from aimark), so both may depend on it without depending on each other.
"""

from __future__ import annotations

from pathlib import PurePath

EXTENSIONS: dict[str, str] = {
    ".txt": "text", ".text": "text", "": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".cs": "csharp",
    ".go": "go",
    ".rs": "rust",
    ".kt": "kotlin", ".kts": "kotlin",
    ".swift": "swift",
    ".rb": "ruby",
    ".php": "php",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell",
    ".pl": "perl", ".pm": "perl",
    ".r": "r",
    ".sql": "sql",
    ".lua": "lua",
    ".hs": "haskell",
    ".html": "html", ".htm": "html", ".xhtml": "xml",
    ".xml": "xml", ".svg": "xml", ".xsl": "xml", ".xsd": "xml", ".plist": "xml",
    ".css": "css",
    ".scss": "scss", ".less": "scss",
    ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini", ".cfg": "ini",
    ".ps1": "powershell",
}


def language_for_filename(filename: str | None) -> str | None:
    """The language a file name implies (``"text"`` for ``.txt``), or ``None`` when unknown."""
    if not filename or filename == "-":
        return None
    return EXTENSIONS.get(PurePath(filename).suffix.lower())
