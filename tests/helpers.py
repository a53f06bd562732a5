"""Test helpers: reproducible keys (a fixed secret instead of os.urandom)."""

from __future__ import annotations

import hashlib

from aimark.keys import DEFAULT_PARAMS, WatermarkKey, _key_id_for


def fixed_key(scheme: str, label: str = "test", **params) -> WatermarkKey:
    secret = hashlib.sha256(f"aimark-{label}-{scheme}".encode()).digest()
    return WatermarkKey(_key_id_for(secret, scheme), scheme, {**DEFAULT_PARAMS[scheme], **params}, secret)


# A small human-written program, and a chat answer holding it in a fenced block (code gate tests).
PROGRAM = '''def moving_average(values, window):
    """Average of each run of `window` consecutive values."""
    if window <= 0:
        raise ValueError("window must be positive")
    totals = []
    running = 0.0
    for index, value in enumerate(values):
        running += value
        if index >= window:
            running -= values[index - window]
        if index + 1 >= window:
            totals.append(running / window)  # one average per full window
    return totals
'''
ANSWER = "Here is a helper that averages a sliding window:\n\n```python\n" + PROGRAM + "```\n\nIt runs in linear time.\n"
