"""The two c2pa-rs C calls c2pa-python does not wrap: data-hashed placeholder and embeddable signing.

Text has no c2pa-rs asset handler, so aimark computes the `c2pa.hash.data` binding itself (C2PA 2.4
A.8/A.9) and asks c2pa-rs to sign a manifest carrying that hash, returned as a raw JUMBF manifest store
(`application/c2pa`) that aimark then embeds. These functions are exported by the native library that
c2pa-python ships; we load our own ctypes handle on it so c2pa-python's own argtypes stay untouched.
"""

from __future__ import annotations

import ctypes
import json
from functools import lru_cache

import c2pa
from c2pa import c2pa as _c2pa_module

from aimark.provenance.errors import ProvenanceError
from aimark.provenance.signing import SigningCredentials

MANIFEST_STORE_FORMAT = b"application/c2pa"
_BytesOut = ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(_c2pa_module._lib._name)
        lib.c2pa_builder_sign_data_hashed_embeddable  # noqa: B018 - fail here if the export is gone
    except (AttributeError, OSError) as err:
        raise ProvenanceError(
            "aimark.c2pa.unsupportedBinding",
            f"this c2pa-python ({c2pa.__version__}) lacks the data-hashed signing aimark needs for text: {err}",
        ) from err
    lib.c2pa_builder_data_hashed_placeholder.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, _BytesOut]
    lib.c2pa_builder_data_hashed_placeholder.restype = ctypes.c_int64
    lib.c2pa_builder_sign_data_hashed_embeddable.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, _BytesOut,
    ]
    lib.c2pa_builder_sign_data_hashed_embeddable.restype = ctypes.c_int64
    lib.c2pa_free.argtypes = [ctypes.c_void_p]
    lib.c2pa_free.restype = ctypes.c_int
    return lib


def _take_bytes(result: int, pointer, what: str) -> bytes:
    if result < 0 or not pointer:
        message = _c2pa_module._read_native_error() or "unknown error"
        raise ProvenanceError("aimark.c2pa.signingFailed", f"{what}: {message}")
    try:
        return ctypes.string_at(pointer, result)
    finally:
        _library().c2pa_free(ctypes.cast(pointer, ctypes.c_void_p))


def _handle(resource) -> ctypes.c_void_p:
    return ctypes.cast(resource._handle, ctypes.c_void_p)


def sign_data_hashed(definition: dict, credentials: SigningCredentials, make_data_hash) -> bytes:
    """Sign `definition` with a `c2pa.hash.data` assertion and return the JUMBF manifest store.

    `make_data_hash(manifest_size)` receives the exact size the signed store will have (c2pa-rs pads
    the signed store to the placeholder's size) and returns the data-hash dict: exclusions in bytes,
    `alg`, and `hash` (bytes). The size comes first because the exclusion length depends on it.
    """
    with credentials.signing() as (signer, context):
        return _sign_data_hashed(definition, signer, context, make_data_hash)


def _sign_data_hashed(definition: dict, signer: c2pa.Signer, context: c2pa.Context, make_data_hash) -> bytes:
    lib = _library()
    builder = c2pa.Builder(definition, context=context)
    try:
        out = ctypes.POINTER(ctypes.c_ubyte)()
        size = lib.c2pa_builder_data_hashed_placeholder(
            _handle(builder), signer.reserve_size(), MANIFEST_STORE_FORMAT, ctypes.byref(out)
        )
        placeholder_size = len(_take_bytes(size, out, "placeholder"))
        data_hash = make_data_hash(placeholder_size)
        data_hash_json = json.dumps(
            {
                "exclusions": [{"start": s, "length": n} for s, n in data_hash["exclusions"]],
                "name": "jumbf manifest",
                "alg": data_hash["alg"],
                "hash": list(data_hash["hash"]),
                "pad": [],
            }
        ).encode()
        out = ctypes.POINTER(ctypes.c_ubyte)()
        size = lib.c2pa_builder_sign_data_hashed_embeddable(
            _handle(builder), _handle(signer), data_hash_json, MANIFEST_STORE_FORMAT, None, ctypes.byref(out)
        )
        store = _take_bytes(size, out, "signing")
    finally:
        builder.close()
    if len(store) != placeholder_size:
        # The exclusion recorded in the signed hash would not match the embedded wrapper.
        raise ProvenanceError(
            "aimark.c2pa.signingFailed", f"signed manifest is {len(store)} bytes, placeholder was {placeholder_size}"
        )
    return store
