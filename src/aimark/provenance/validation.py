"""Reading a manifest with c2pa-rs and turning its validation results into one report type."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from aimark.provenance.manifest import summarise_manifest

if TYPE_CHECKING:
    import c2pa

SUCCESS, FAILURE, INFORMATIONAL = "success", "failure", "informational"


@dataclass(frozen=True)
class StatusCode:
    """One validation status: a C2PA code (or an `aimark.*` code), its kind, and who reported it."""

    code: str
    kind: str
    explanation: str = ""
    source: str = "c2pa-rs"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "kind": self.kind, "explanation": self.explanation, "source": self.source}


@dataclass(frozen=True)
class C2paReport:
    """What a C2PA reader found in one piece of content.

    `present`: a manifest (or a damaged wrapper) was found. `signature_valid`, `bound` (hard binding
    matches this exact content) and `trusted` (the signer chains to a supplied trust anchor) are the
    three things a verifier needs; `statuses` lists every code behind them.
    """

    carrier: str | None
    present: bool
    signature_valid: bool = False
    bound: bool = False
    trusted: bool = False
    statuses: tuple[StatusCode, ...] = ()
    manifest: dict[str, Any] | None = None
    manifest_store: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def failures(self) -> tuple[StatusCode, ...]:
        return tuple(s for s in self.statuses if s.kind == FAILURE)

    @property
    def valid(self) -> bool:
        return self.present and self.signature_valid and self.bound and self.trusted and not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "carrier": self.carrier,
            "present": self.present,
            "valid": self.valid,
            "signature_valid": self.signature_valid,
            "bound": self.bound,
            "trusted": self.trusted,
            "statuses": [s.to_dict() for s in self.statuses],
            "manifest": self.manifest,
        }


def absent(carrier: str | None, *statuses: StatusCode) -> C2paReport:
    """No usable manifest; `statuses` say why (a failure status means a damaged one was found)."""
    return C2paReport(carrier=carrier, present=any(s.kind == FAILURE for s in statuses), statuses=statuses)


# Verification never touches the network. c2pa-rs by default fetches a manifest that a file names by
# URL (PDF XMP `dcterms:provenance`, and the other XMP carriers): a public verifier would then issue a
# GET to any address an uploader chooses and report its status. Remote fetch and OCSP are off, and the
# empty host allow-list refuses any other request the library might make. c2pa-rs ignores unknown
# settings silently, so tests/provenance/test_no_network.py checks with a real server that this holds.
OFFLINE_SETTINGS: dict[str, Any] = {
    "verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
    "core": {"allowed_network_hosts": []},
}
REMOTE_NOT_FETCHED = "the manifest is referenced by URL and was not fetched (aimark does not fetch remote manifests)"


def _context(trust_anchors: bytes | None) -> c2pa.Context:
    import c2pa  # c2pa-rs loads only when a file carries a manifest to read

    settings: dict[str, Any] = {name: dict(values) for name, values in OFFLINE_SETTINGS.items()}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors.decode("utf-8", "replace")}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _statuses_from(results: dict[str, Any], drop_prefixes: tuple[str, ...]) -> list[StatusCode]:
    statuses = []
    for kind in (SUCCESS, INFORMATIONAL, FAILURE):
        for entry in results.get(kind) or []:
            code = entry.get("code", "")
            if code.startswith(drop_prefixes):
                continue
            statuses.append(StatusCode(code, kind, entry.get("explanation", "")))
    return statuses


def read_with_c2pa(
    media_type: str,
    asset: bytes,
    *,
    carrier: str,
    trust_anchors: bytes | None,
    manifest_store: bytes | None = None,
    check_binding: Callable[[dict[str, Any] | None], StatusCode] | None = None,
) -> C2paReport:
    """Validate with c2pa-rs: an asset with an embedded manifest, or a detached store plus the asset.

    For text carriers c2pa-rs has no asset handler, so its data-hash codes do not apply (it cannot
    locate a wrapper inside text, and A.8 hashes the NFC text); the caller passes its own `binding`
    check: given the signed `c2pa.hash.data` assertion (or None), it returns the binding status computed
    per C2PA 2.4 A.8/A.9, which replaces c2pa-rs's data-hash codes.
    """
    import c2pa  # c2pa-rs loads only when a file carries a manifest to read

    try:
        with _context(trust_anchors) as context:
            reader = c2pa.Reader(media_type, io.BytesIO(asset), manifest_store, context=context)
            with reader:
                store_json = json.loads(reader.json())
                detailed = json.loads(reader.detailed_json()) if check_binding else {}
    except c2pa.C2paError as err:
        if isinstance(err, c2pa.C2paError.ManifestNotFound):
            return absent(carrier)
        kind = native_error_kind(err)
        if kind in ("Remote", "RemoteManifest"):
            return absent(carrier, StatusCode("manifest.inaccessible", FAILURE, REMOTE_NOT_FETCHED, "aimark"))
        return absent(carrier, StatusCode("manifest.inaccessible", FAILURE, f"c2pa-rs cannot read the manifest ({kind})", "c2pa-rs"))
    active_label = store_json.get("active_manifest")
    active = (store_json.get("manifests") or {}).get(active_label) if active_label else None
    if active is None:
        return absent(carrier, StatusCode("claim.missing", FAILURE, "manifest store has no active manifest"))
    results = (store_json.get("validation_results") or {}).get("activeManifest") or {}
    statuses = _statuses_from(results, ("assertion.dataHash.",) if check_binding else ())
    if check_binding:
        store = ((detailed.get("manifests") or {}).get(active_label) or {}).get("assertion_store") or {}
        statuses.append(check_binding(store.get("c2pa.hash.data")))
    codes = {(s.code, s.kind) for s in statuses}
    failed_codes = {s.code for s in statuses if s.kind == FAILURE}
    signature_valid = ("claimSignature.validated", SUCCESS) in codes and not any(
        c.startswith(("claimSignature.", "signingCredential.invalid", "signingCredential.revoked")) for c in failed_codes
    )
    bound = any(c in codes for c in _BINDING_MATCHES) and not any(c.endswith("Hash.mismatch") for c in failed_codes)
    trusted = ("signingCredential.trusted", SUCCESS) in codes
    return C2paReport(
        carrier=carrier,
        present=True,
        signature_valid=signature_valid,
        bound=bound,
        trusted=trusted,
        statuses=tuple(statuses),
        manifest=summarise_manifest(active),
        manifest_store=manifest_store,
    )


_BINDING_MATCHES = {
    ("assertion.dataHash.match", SUCCESS),
    ("assertion.collectionHash.match", SUCCESS),
    ("assertion.bmffHash.match", SUCCESS),
    ("assertion.boxesHash.match", SUCCESS),
}


_KIND = re.compile(r"[A-Za-z]{1,40}(?=:)")


def native_error_kind(err: Exception) -> str:
    """The error's kind only ("Remote", "Json", ...): c2pa-rs messages quote URLs and parts of the file,
    which a report must not echo (a public verifier would become a probe of whatever they name)."""
    found = _KIND.match(str(err).strip())
    return found.group() if found else type(err).__name__.lstrip("_")
