"""Sign and read C2PA manifests in text: plain prose (A.8 wrapper) and source code (A.9 comment line)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from aimark import textbounds
from aimark.labels.syntax import FileKind
from aimark.provenance import structured_text, unstructured_text
from aimark.provenance.errors import ProvenanceError
from aimark.provenance.manifest import GenerationInfo
from aimark.provenance.validation import FAILURE, INFORMATIONAL, SUCCESS, C2paReport, StatusCode, absent, read_with_c2pa

# Signing (c2pa-rs, cryptography) is imported by the sign_* functions: reading text needs neither.
if TYPE_CHECKING:
    from aimark.provenance.signing import SigningCredentials

UNSTRUCTURED, STRUCTURED = "unstructured-text", "structured-text"
_MEDIA_TYPE = "application/c2pa"
_DATA_HASH_MATCH, _DATA_HASH_MISMATCH = "assertion.dataHash.match", "assertion.dataHash.mismatch"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProvenanceError("aimark.text.invalidUtf8", f"text is not valid UTF-8 (byte {err.start})") from err


def sign_unstructured(data: bytes, credentials: SigningCredentials, info: GenerationInfo) -> bytes:
    """`data` (UTF-8 text) with a signed A.8 wrapper appended; the visible text is unchanged."""
    text = _decode(data)
    if unstructured_text.scan(text) != unstructured_text.WrapperScan():
        raise ProvenanceError("aimark.c2pa.alreadySigned", "text already carries a C2PA text wrapper")

    def make_data_hash(manifest_size: int) -> dict[str, Any]:
        exclusion = (len(data), unstructured_text.target_wrapper_length(manifest_size))
        return {"exclusions": [exclusion], "alg": "sha256", "hash": unstructured_text.data_hash(data, [])}

    from aimark.provenance.native_bridge import sign_data_hashed

    store = sign_data_hashed(info.manifest_definition("text/plain"), credentials, make_data_hash)
    return data + unstructured_text.encode_wrapper(store).encode("utf-8")


def sign_structured(
    data: bytes, kind: FileKind, credentials: SigningCredentials, info: GenerationInfo, *, first_line_taken: bool
) -> bytes:
    """`data` (source code) with one signed A.9 manifest comment line added."""
    text = _decode(data)
    if structured_text.BEGIN in text:
        raise ProvenanceError("aimark.c2pa.alreadySigned", "file already carries a C2PA manifest line")
    if not kind.prefix:
        raise ProvenanceError("aimark.c2pa.noCommentSyntax", f"{kind.name} has no comment syntax for an A.9 line")
    place = structured_text.placement(text, first_line_taken)
    start = len(text[: place.offset].encode("utf-8"))
    # What the hash covers once the line is in: everything but the inserted text (see Placement).
    covered = (text[: place.offset] + text[place.offset + place.consumed :]).encode("utf-8")

    def make_data_hash(manifest_size: int) -> dict[str, Any]:
        line_length = structured_text.encoded_line_length(kind.prefix, kind.suffix, manifest_size)
        length = len((place.before + place.after).encode()) + line_length
        return {"exclusions": [(start, length)], "alg": "sha256", "hash": hashlib.sha256(covered).digest()}

    from aimark.provenance.native_bridge import sign_data_hashed

    store = sign_data_hashed(info.manifest_definition("text/plain"), credentials, make_data_hash)
    line = place.before + structured_text.manifest_line(kind.prefix, kind.suffix, store) + place.after
    return (text[: place.offset] + line + text[place.offset + place.consumed :]).encode("utf-8")


def _binding_checker(
    expected_exclusion: tuple[int, int], compute: Callable[[list[tuple[int, int]]], bytes]
) -> Callable[[dict[str, Any] | None], StatusCode]:
    """Check the signed `c2pa.hash.data` against this exact content (any edit reads as a mismatch)."""

    def check(assertion: dict[str, Any] | None) -> StatusCode:
        if not assertion:
            return StatusCode("claim.hardBindings.missing", FAILURE, "manifest has no c2pa.hash.data assertion", "aimark")
        try:
            exclusions = [(int(e["start"]), int(e["length"])) for e in assertion.get("exclusions", [])]
            signed_hash = base64.b64decode(assertion["hash"]) if isinstance(assertion["hash"], str) else bytes(assertion["hash"])
        except (KeyError, TypeError, ValueError):
            return StatusCode(_DATA_HASH_MISMATCH, FAILURE, "malformed c2pa.hash.data assertion", "aimark")
        if assertion.get("alg", "sha256") != "sha256":
            return StatusCode("algorithm.unsupported", FAILURE, f"hash algorithm {assertion.get('alg')}", "aimark")
        if exclusions != [expected_exclusion]:
            return StatusCode(
                _DATA_HASH_MISMATCH, FAILURE,
                f"signed exclusion {exclusions} does not cover exactly the embedded manifest {[expected_exclusion]}", "aimark",
            )
        try:
            actual = compute(exclusions)
        except UnicodeDecodeError:
            return StatusCode(_DATA_HASH_MISMATCH, FAILURE, "text outside the manifest is not valid UTF-8", "aimark")
        if actual != signed_hash:
            return StatusCode(_DATA_HASH_MISMATCH, FAILURE, "content changed after signing (hash differs)", "aimark")
        return StatusCode(_DATA_HASH_MATCH, SUCCESS, "text matches the signed hash", "aimark")

    return check


def _text_findings(visible_text: str) -> list[StatusCode]:
    findings = []
    if runs := unstructured_text.stray_selector_runs(visible_text):
        findings.append(StatusCode("aimark.text.strayVariationSelectors", INFORMATIONAL, f"{runs} run(s) of variation selectors outside a wrapper (hidden data)", "aimark"))
    if zero_width := len(unstructured_text.ZERO_WIDTH.findall(visible_text)):
        findings.append(StatusCode("aimark.text.zeroWidthCharacters", INFORMATIONAL, f"{zero_width} zero-width character(s) in the text", "aimark"))
    if not textbounds.is_normalized("NFC", visible_text):
        findings.append(StatusCode("aimark.text.notNfc", INFORMATIONAL, "text is not NFC normalised; A.8 binds its NFC form", "aimark"))
    return findings


def _with_findings(report: C2paReport, findings: list[StatusCode]) -> C2paReport:
    if not findings:
        return report
    return replace(report, statuses=report.statuses + tuple(findings))


def read_unstructured(data: bytes, trust_anchors: bytes | None) -> C2paReport:
    """Find, validate and bind-check an A.8 wrapper in plain text."""
    try:
        text = _decode(data)
    except ProvenanceError as err:
        return absent(UNSTRUCTURED, StatusCode(err.code, FAILURE, err.message, "aimark"))
    found = unstructured_text.scan(text)
    if found.failure:
        return absent(UNSTRUCTURED, StatusCode(found.failure, FAILURE, found.detail, "aimark"), *_text_findings(text))
    if found.manifest_store is None:
        return absent(UNSTRUCTURED, *_text_findings(text))
    visible = (data[: found.start] + data[found.start + found.length :]).decode("utf-8")
    report = read_with_c2pa(
        _MEDIA_TYPE, data, carrier=UNSTRUCTURED, trust_anchors=trust_anchors, manifest_store=found.manifest_store,
        check_binding=_binding_checker((found.start, found.length), lambda ex: hashlib.sha256(unstructured_text.hashed_text(data, ex)).digest()),
    )
    return _with_findings(report, _text_findings(visible))


def read_structured(data: bytes, trust_anchors: bytes | None) -> C2paReport:
    """Find, validate and bind-check the A.9 manifest line in source code."""
    try:
        _decode(data)
    except ProvenanceError as err:
        return absent(STRUCTURED, StatusCode(err.code, FAILURE, err.message, "aimark"))
    found = structured_text.scan(data)
    if found.failure == structured_text.NO_MANIFEST:
        return absent(STRUCTURED, StatusCode(found.failure, INFORMATIONAL, found.detail, "aimark"))
    if found.failure:
        return absent(STRUCTURED, StatusCode(found.failure, FAILURE, found.detail, "aimark"))
    store = found.manifest_store()
    if isinstance(store, str):
        return absent(STRUCTURED, StatusCode("manifest.inaccessible", FAILURE, store, "aimark"))
    assert found.exclusion is not None
    return read_with_c2pa(
        _MEDIA_TYPE, data, carrier=STRUCTURED, trust_anchors=trust_anchors, manifest_store=store,
        check_binding=_binding_checker(found.exclusion, lambda ex: structured_text.data_hash(data, ex[0])),
    )
