"""The watermark layer of verification: the engine's detector behind a key file."""

from __future__ import annotations

from collections.abc import Callable

from aimark.detect import DEFAULT_ALPHA, Detector
from aimark.engines import load_tokenizer
from aimark.keys import Keyring


def watermark_check_from_keyfile(
    key_path: str, alpha: float = DEFAULT_ALPHA, *, model: str | None = None
) -> Callable[[str], dict]:
    """A ``text -> detection dict`` callable for :func:`aimark.verify.verify`.

    The tokenizer is the key's own model's (or ``model``), loaded once here, so
    a verifier checking many files pays for it once.
    """
    keyring = Keyring.load([key_path])
    models = {k.model for k in keyring if k.model}
    tokenizer = load_tokenizer(model or (models.pop() if len(models) == 1 else None))
    detector = Detector(keyring, tokenizer, alpha=alpha)

    def check(text: str) -> dict:
        return detector.detect(text, with_tokens=False).to_dict()

    return check
