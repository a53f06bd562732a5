"""Test helpers: reproducible keys (a fixed secret instead of os.urandom)."""

from __future__ import annotations

import hashlib

from aimark.keys import DEFAULT_PARAMS, WatermarkKey, _key_id_for


def fixed_key(scheme: str, label: str = "test", **params) -> WatermarkKey:
    secret = hashlib.sha256(f"aimark-{label}-{scheme}".encode()).digest()
    return WatermarkKey(_key_id_for(secret, scheme), scheme, {**DEFAULT_PARAMS[scheme], **params}, secret)
