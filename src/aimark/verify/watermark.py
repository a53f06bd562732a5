"""The watermark layer of verification: the engine's detector behind a key file, with the code gate of the file."""

from __future__ import annotations

from collections.abc import Callable

from aimark.detect import DEFAULT_ALPHA, DetectionResult, Detector
from aimark.engines import load_detection_tokenizer
from aimark.keys import Keyring
from aimark.schemes.code import detection_language


def detect_file_text(detector: Detector, text: str, filename: str | None = None, *, with_tokens: bool = False) -> DetectionResult:
    """Detect in a file's text with the code gate its name implies (``app.py``: python; ``notes.md``: markdown),
    else the one guessed from the text (none for prose)."""
    return detector.detect(text, with_tokens=with_tokens, language=detection_language(text, filename=filename))


def watermark_check_from_keyfile(
    key_path: str, alpha: float = DEFAULT_ALPHA, *, model: str | None = None
) -> Callable[..., dict]:
    """A ``(text, filename=None) -> detection dict`` callable for :func:`aimark.verify.verify`.

    The tokenizer is the key's own model's (or ``model``), loaded once here, so
    a verifier checking many files pays for it once.
    """
    keyring = Keyring.load([key_path])
    models = {k.model for k in keyring if k.model}
    tokenizer = load_detection_tokenizer(model or (models.pop() if len(models) == 1 else None))
    detector = Detector(keyring, tokenizer, alpha=alpha)

    def check(text: str, filename: str | None = None) -> dict:
        return detect_file_text(detector, text, filename).to_dict()

    return check
