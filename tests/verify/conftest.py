"""Fixtures for the verifier: a test CA, and labelled + signed files built with the real components."""

from __future__ import annotations

import pytest

from aimark.labels import add_label, file_kind_for
from aimark.provenance import GenerationInfo, SigningCredentials, add_provenance
from aimark.provenance.test_pki import TestPki, generate_test_pki

PRODUCER = "001191440300708461136T1XGW3"


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return generate_test_pki()


@pytest.fixture(scope="session")
def mark(pki):
    """mark(content, filename, profile, lang) -> labelled, AIGC-tagged and signed bytes."""
    credentials = SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem)

    def _mark(content: bytes, filename: str, profile: str = "all", lang: str | None = None, *, sign: bool = True) -> bytes:
        labelled = add_label(content, file_kind_for(filename), profile, lang)
        if not sign:
            return labelled
        info = GenerationInfo(model_name="test-model", watermark_scheme="kgw", watermark_key_id="key-1")
        return add_provenance(labelled, filename, credentials, info, aigc_producer=PRODUCER)

    return _mark


@pytest.fixture(scope="session")
def fake_watermark():
    """fake_watermark(watermarked, tokens) -> a plain stand-in for the engine's detector (the verifier's
    logic is what is under test)."""

    def factory(watermarked: bool = True, tokens: int = 400):
        def check(text: str) -> dict:
            return {"watermarked": watermarked, "p_value": 1e-12 if watermarked else 0.4, "scheme": "kgw",
                    "key_id": "key-1", "num_scored_tokens": tokens}

        return check

    return factory
