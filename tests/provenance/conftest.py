"""Test certificates are generated here, per session; nothing is downloaded."""

from __future__ import annotations

import pytest

from aimark.provenance import GenerationInfo, SigningCredentials
from aimark.provenance.test_pki import TestPki, generate_test_pki


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return generate_test_pki()


@pytest.fixture(scope="session")
def other_pki() -> TestPki:
    """A second, unrelated CA: its root must not make the first one's signatures trusted."""
    return generate_test_pki("aimark TEST ONLY other signer")


@pytest.fixture(scope="session")
def credentials(pki: TestPki) -> SigningCredentials:
    return SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem)


@pytest.fixture()
def info() -> GenerationInfo:
    return GenerationInfo(model_name="gemma-3-270m", watermark_scheme="synthid", watermark_key_id="key-1234")
