"""One verifier: read every layer of a file once, then judge each jurisdiction profile on that evidence.

Layers: the visible notice, the C2PA manifest (valid? bound to these bytes? trusted?), the GB 45438
AIGC metadata (well-formed? one?), and the watermark (through a caller-supplied `watermark_check`).
"""

from __future__ import annotations

import inspect
import logging
import numbers
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from aimark.labels import WORDING_RULES, find_labels, remove_label_text
from aimark.provenance import AIGC_CARRIERS, TRAINED_ALGORITHMIC_MEDIA, detect_carrier, read_aigc, read_c2pa
from aimark.provenance.errors import ProvenanceError
from aimark.verify.extract import ExtractedText, visible_text
from aimark.verify.profiles import PROFILES, Profile, Requirement
from aimark.verify.report import (
    MISSING, NOT_APPLICABLE, NOT_CHECKED, SATISFIED, VIOLATED, InputError, ProfileResult, RequirementResult,
    VerificationReport,
)

if TYPE_CHECKING:  # annotations only: reading a text file imports neither lxml nor pypdf
    from aimark.provenance.aigc import AigcLabel
    from aimark.provenance.validation import C2paReport

_log = logging.getLogger(__name__)

# text -> detection dict; a check that takes a keyword `filename` is also given the file's name (for the code gate).
WatermarkCheck = Callable[..., dict]
# text -> {"matches": [...]}: the issued-content registry (aimark.registry.Registry.lookup_dict).
RegistryLookup = Callable[[str], dict]
# What a watermark check must return (more keys are allowed and kept).
WATERMARK_KEYS = ("watermarked", "p_value", "scheme", "key_id", "num_scored_tokens")
# Code of Practice 1.1.2: very short text (< 200 tokens) is exempt from the watermark measure.
SHORT_TEXT_TOKENS = 200
# A notice counts at the start or end (GB 45438-2025 5.1 b): within this many non-blank lines of either end.
NOTICE_WINDOW_LINES = 3


@dataclass
class Evidence:
    carrier: str
    text: str | None = None
    notices: list[dict[str, Any]] = field(default_factory=list)
    c2pa: C2paReport | None = None
    aigc: AigcLabel | None = None
    aigc_error: ProvenanceError | None = None
    watermark: dict[str, Any] | None = None
    watermark_error: str | None = None
    registry: dict[str, Any] | None = None
    registry_error: str | None = None
    # Why there is no watermark to check: the generator is known not to watermark (a gateway's upstream).
    watermark_absent: str | None = None
    input_errors: list[InputError] = field(default_factory=list)
    extracted: ExtractedText | None = None


# --- reading the layers ----------------------------------------------------------------------------

def _find_notices(text: str) -> list[dict[str, Any]]:
    """aimark labels anywhere, and any line near the start or end that words an AI notice for some profile."""
    found = [{"text": label.text, "position": label.at, "aimark_label": True, "profile": label.profile}
             for label in find_labels(text)]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    window = [(line, "start") for line in lines[:NOTICE_WINDOW_LINES]]
    window += [(line, "end") for line in lines[-NOTICE_WINDOW_LINES:] if (line, "start") not in window]
    labelled = {notice["text"].strip() for notice in found}
    for line, position in window:
        if line not in labelled and any(rule.matches(line) for rule in WORDING_RULES.values()):
            found.append({"text": line, "position": position, "aimark_label": False, "profile": None})
    return found


def _normalise_watermark_result(result: Any) -> dict[str, Any] | str:
    """The detector's dict with the required keys as plain Python values (NumPy scalars welcome), or why not.

    Extra keys are kept when they are JSON-ready scalars, so a detector can add its own details.
    """
    if not isinstance(result, dict):
        return f"watermark check returned {type(result).__name__}, not a dict"
    flag = result.get("watermarked")
    if type(flag).__name__ not in ("bool", "bool_"):
        return "watermark check result lacks a boolean 'watermarked'"
    p_value, tokens = result.get("p_value"), result.get("num_scored_tokens")
    if not isinstance(p_value, numbers.Real) or isinstance(p_value, bool) or not 0.0 <= float(p_value) <= 1.0:
        return "watermark check result lacks a 'p_value' between 0 and 1"
    if not isinstance(tokens, numbers.Integral) or isinstance(tokens, bool) or int(tokens) < 0:
        return "watermark check result lacks a non-negative integer 'num_scored_tokens'"
    if not isinstance(result.get("scheme"), str) or not isinstance(result.get("key_id"), str):
        return "watermark check result lacks string 'scheme' and 'key_id'"
    extras = {k: v for k, v in result.items() if isinstance(k, str) and isinstance(v, (str, int, float, bool, type(None)))}
    return {**extras, "watermarked": bool(flag), "p_value": float(p_value), "num_scored_tokens": int(tokens),
            "scheme": result["scheme"], "key_id": result["key_id"]}


def _takes_filename(check: WatermarkCheck) -> bool:
    try:
        parameters = inspect.signature(check).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable without a signature: text only
        return False
    return any(p.kind is p.VAR_KEYWORD or (p.name == "filename" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
               for p in parameters)


def _run_watermark_check(check: WatermarkCheck, text: str, filename: str | None) -> tuple[dict[str, Any] | None, str | None]:
    try:
        result = _normalise_watermark_result(check(text, filename=filename) if _takes_filename(check) else check(text))
    except Exception as err:  # noqa: BLE001 - a detector failure is reported, never a traceback
        # Its message may quote the text or hold paths; the report gets a fixed line, the log the type.
        _log.warning("watermark check raised %s", type(err).__name__)
        return None, "watermark check failed (an error in the detector)"
    return (None, result) if isinstance(result, str) else (result, None)


def _run_registry_lookup(lookup: RegistryLookup, text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        result = lookup(text)
    except Exception as err:  # noqa: BLE001 - a database failure is reported, never a traceback
        _log.warning("registry lookup raised %s", type(err).__name__)
        return None, "registry lookup failed (an error in the registry)"
    if not isinstance(result, dict) or not isinstance(result.get("matches"), list):
        return None, "registry lookup did not return {'matches': [...]}"
    return result, None


def gather_evidence(
    content: bytes, filename: str | None, *, trust_anchors: bytes | None, watermark_check: WatermarkCheck | None,
    registry_lookup: RegistryLookup | None = None, watermark_absent: str | None = None,
) -> Evidence:
    carrier = detect_carrier(content, filename)
    evidence = Evidence(carrier=carrier, watermark_absent=watermark_absent if watermark_check is None else None)
    try:
        evidence.extracted = visible_text(content, carrier)
        evidence.text = evidence.extracted.text
    except UnicodeDecodeError as err:
        evidence.input_errors.append(InputError("aimark.text.invalidUtf8", f"content is not valid UTF-8 (byte {err.start})"))
    except ProvenanceError as err:
        evidence.input_errors.append(InputError(err.code, err.message))
    if evidence.text is not None:
        evidence.notices = _find_notices(evidence.text)
    evidence.c2pa = read_c2pa(content, filename, trust_anchors)
    if carrier in AIGC_CARRIERS and not evidence.input_errors:
        try:
            evidence.aigc = read_aigc(carrier, content)
        except ProvenanceError as err:
            evidence.aigc_error = err
    if watermark_check is not None and evidence.text is not None:
        # The detector scores the generated text: aimark's own notice lines were not generated with the key.
        generated = remove_label_text(evidence.text)[0]
        evidence.watermark, evidence.watermark_error = _run_watermark_check(watermark_check, generated, filename)
    if registry_lookup is not None and evidence.text is not None:
        evidence.registry, evidence.registry_error = _run_registry_lookup(registry_lookup, evidence.text)
    return evidence


# --- checks: (evidence, profile) -> (status, detail) -------------------------------------------------

def _notice_present(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    rule = WORDING_RULES[profile.name]
    if evidence.text is None:
        return NOT_CHECKED, "the text could not be read"
    for notice in evidence.notices:
        if rule.matches(notice["text"]):
            return SATISFIED, f"notice at the {notice['position']}: {notice['text'][:120]}"
    if evidence.notices:
        return VIOLATED, f"a notice is present but its wording does not meet {rule.clause}: {evidence.notices[0]['text'][:120]}"
    return MISSING, "no AI notice at the start or end of the text"


def _c2pa_says_ai(report: C2paReport) -> bool:
    return bool(report.manifest and report.manifest.get("created") and report.manifest.get("digital_source_type") == TRAINED_ALGORITHMIC_MEDIA)


def _c2pa_failure_detail(report: C2paReport) -> str:
    return "; ".join(f"{s.code}: {s.explanation}" for s in report.failures) or "manifest not valid"


def _c2pa_valid(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    report = evidence.c2pa
    if report is None or not report.present:
        return MISSING, "no C2PA manifest"
    if report.valid:
        return SATISFIED, f"valid, bound and trusted C2PA manifest ({report.carrier}) signed by {report.manifest.get('signer')}"
    return VIOLATED, _c2pa_failure_detail(report)


def _tampered(report: C2paReport) -> bool:
    """Present but broken: signature, binding or structure fail (an untrusted signer alone is not tampering)."""
    other_failures = [s for s in report.failures if s.code != "signingCredential.untrusted"]
    return report.present and (not report.signature_valid or not report.bound or bool(other_failures))


def _c2pa_intact(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    report = evidence.c2pa
    if report is None or not report.present:
        return NOT_APPLICABLE, "no C2PA manifest to check"
    if _tampered(report):
        return VIOLATED, _c2pa_failure_detail(report)
    if not report.trusted:
        return SATISFIED, "manifest intact (signature and binding valid); signer not trusted (no matching --trust anchor)"
    return SATISFIED, "manifest intact and trusted"


def _watermark_detected(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    if evidence.watermark_error:
        return NOT_CHECKED, evidence.watermark_error
    if evidence.watermark is None:
        if evidence.watermark_absent:  # said as it is: a layer the generator does not have is missing, not unchecked
            return MISSING, f"no watermark layer: {evidence.watermark_absent}"
        return NOT_CHECKED, "watermark not checked (pass --key KEYFILE)"
    mark = evidence.watermark
    summary = f"scheme {mark['scheme']}, key {mark['key_id']}, p={mark['p_value']:.3g}, {mark['num_scored_tokens']} tokens scored"
    if mark.get("code_language"):
        summary += f", code gate: {mark['code_language']}"
    if evidence.extracted is not None and evidence.extracted.partial:
        summary += ", on part of the text only"
    return (SATISFIED, f"watermark detected ({summary})") if mark["watermarked"] else (MISSING, f"no watermark detected ({summary})")


def _estimated_tokens(text: str) -> int:
    """A tokenizer-free estimate: words, counting each CJK/kana/hangul character as one token."""
    cjk = len(re.findall(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", text))
    return len(re.sub(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", " ", text).split()) + cjk


def _watermark_for_long_text(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    tokens = evidence.watermark["num_scored_tokens"] if evidence.watermark else _estimated_tokens(evidence.text or "")
    if tokens < SHORT_TEXT_TOKENS:
        return NOT_APPLICABLE, f"about {tokens} tokens: shorter than {SHORT_TEXT_TOKENS}, exempt"
    return _watermark_detected(evidence, profile)


def _machine_readable_mark(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    report = evidence.c2pa
    marks = []
    if report is not None and report.valid and _c2pa_says_ai(report):
        marks.append("valid C2PA manifest declaring trainedAlgorithmicMedia")
    if evidence.watermark and evidence.watermark["watermarked"]:
        marks.append(f"watermark (p={evidence.watermark['p_value']:.3g})")
    if marks:
        return SATISFIED, "; ".join(marks)
    if report is not None and report.present:
        return VIOLATED, "C2PA manifest does not verify: " + _c2pa_failure_detail(report)
    unchecked = " ; watermark not checked (pass --key KEYFILE)" if evidence.watermark is None and not evidence.watermark_absent else ""
    if evidence.watermark_absent:
        return MISSING, f"no valid C2PA manifest; no watermark layer: {evidence.watermark_absent}"
    return (NOT_CHECKED if unchecked else MISSING), "no valid C2PA manifest" + (unchecked or "; no watermark detected")


def _aigc_valid(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    if evidence.aigc_error is not None:
        return VIOLATED, f"{evidence.aigc_error.code}: {evidence.aigc_error.message}"
    if evidence.aigc is None:
        return MISSING if not evidence.input_errors else NOT_CHECKED, "no AIGC metadata label"
    return SATISFIED, f"AIGC Label {evidence.aigc.label} from {evidence.aigc.content_producer}, ProduceID {evidence.aigc.produce_id}"


def _produce_id_matches(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    content_id = ((evidence.c2pa.manifest or {}).get("generation") or {}).get("content_id") if evidence.c2pa else None
    if evidence.aigc is None or not content_id:
        return NOT_APPLICABLE, "needs both an AIGC label and a C2PA content id"
    if evidence.aigc.produce_id == content_id:
        return SATISFIED, f"ProduceID {content_id} matches the C2PA content id"
    return VIOLATED, f"ProduceID {evidence.aigc.produce_id} differs from the C2PA content id {content_id}"


def _in_service_display(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    return NOT_APPLICABLE, ("a file is output that left the service: its own notice is what counts (kr.output-notice); "
                            "in the service, aimark serve returns the notice to display with every response")


def _manifest_facts(evidence: Evidence) -> dict[str, Any] | None:
    report = evidence.c2pa
    return report.manifest if report is not None and report.valid else None


def _content_identifier(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    manifest = _manifest_facts(evidence)
    content_id = ((manifest or {}).get("generation") or {}).get("content_id")
    if not content_id:
        return MISSING, "no valid C2PA manifest with a content id"
    shared = evidence.aigc is not None and evidence.aigc.produce_id == content_id
    return SATISFIED, f"content id {content_id}" + (" (also the AIGC ProduceID)" if shared else "")


def _detection_endpoint(evidence: Evidence, profile: Profile) -> tuple[str, str]:
    endpoint = (_manifest_facts(evidence) or {}).get("detection_endpoint")
    if not endpoint:
        return MISSING, "no detection endpoint in a valid C2PA manifest (set provider.detection_endpoint in aimark.toml)"
    return SATISFIED, f"detection endpoint {endpoint} (reported, not fetched)"


CHECKS: dict[str, Callable[[Evidence, Profile], tuple[str, str]]] = {
    "in_service_display": _in_service_display,
    "content_identifier": _content_identifier,
    "detection_endpoint": _detection_endpoint,
    "notice_present": _notice_present,
    "c2pa_valid": _c2pa_valid,
    "c2pa_intact": _c2pa_intact,
    "watermark_detected": _watermark_detected,
    "watermark_for_long_text": _watermark_for_long_text,
    "machine_readable_mark": _machine_readable_mark,
    "aigc_valid": _aigc_valid,
    "produce_id_matches": _produce_id_matches,
}


def _judge(requirement: Requirement, evidence: Evidence, profile: Profile) -> RequirementResult:
    if requirement.carriers is not None and evidence.carrier not in requirement.carriers:
        status, detail = NOT_APPLICABLE, f"does not apply to {evidence.carrier} files"
    else:
        status, detail = CHECKS[requirement.check](evidence, profile)
    return RequirementResult(requirement.id, requirement.description, requirement.clause, requirement.layer,
                             requirement.mandatory, status, detail)


def _layers(evidence: Evidence) -> dict[str, Any]:
    aigc: dict[str, Any] = {"present": evidence.aigc is not None}
    if evidence.aigc is not None:
        aigc["label"] = evidence.aigc.to_annex_e()["AIGC"]
    if evidence.aigc_error is not None:
        aigc["error"] = {"code": evidence.aigc_error.code, "message": evidence.aigc_error.message}
    watermark: dict[str, Any] = {"checked": evidence.watermark is not None, "result": evidence.watermark}
    if evidence.watermark_error:
        watermark["error"] = evidence.watermark_error
    if evidence.watermark_absent:
        watermark["applicable"], watermark["absent"] = False, evidence.watermark_absent
    registry: dict[str, Any] = {"checked": evidence.registry is not None,
                                "matches": evidence.registry["matches"] if evidence.registry else []}
    if evidence.registry_error:
        registry["error"] = evidence.registry_error
    return {
        "text": evidence.extracted.to_dict() if evidence.extracted else None,
        "notice": {"found": evidence.notices},
        "c2pa": evidence.c2pa.to_dict() if evidence.c2pa else None,
        "aigc": aigc,
        "watermark": watermark,
        "registry": registry,
    }


def verify(
    content: bytes,
    filename: str | None,
    profile: str | list[str] | tuple[str, ...],
    *,
    trust_anchors: bytes | None = None,
    watermark_check: WatermarkCheck | None = None,
    registry_lookup: RegistryLookup | None = None,
    watermark_absent: str | None = None,
) -> VerificationReport:
    """Inspect every layer of `content` and judge it against `profile` ('kr', 'cn', 'eu', 'all' or a list).

    `trust_anchors`: PEM root certificate(s) a C2PA signer must chain to. `watermark_check(text)` returns
    at least {"watermarked", "p_value", "scheme", "key_id", "num_scored_tokens"}; a check with a `filename`
    keyword is called `check(text, filename=filename)`, so it can pick the code gate from the extension. `registry_lookup(text)` returns
    {"matches": [...]}, the outputs a provenance registry issued that this text copies (evidence, no verdict).
    `watermark_absent`: with no `watermark_check`, why the text has no watermark to check (its generator does
    not watermark); the watermark requirements then say so, as missing, instead of "not checked".
    """
    names = list(PROFILES) if profile == "all" else ([profile] if isinstance(profile, str) else list(profile))
    unknown = [name for name in names if name not in PROFILES]
    if unknown or not names:
        raise ValueError(f"unknown profile {', '.join(unknown) or '(none)'}; choose from {', '.join(PROFILES)} or all")
    evidence = gather_evidence(content, filename, trust_anchors=trust_anchors, watermark_check=watermark_check,
                               registry_lookup=registry_lookup, watermark_absent=watermark_absent)
    results = tuple(
        ProfileResult(name, PROFILES[name].title, tuple(_judge(r, evidence, PROFILES[name]) for r in PROFILES[name].requirements))
        for name in names
    )
    warnings = tuple(
        InputError(s.code, s.explanation) for s in (evidence.c2pa.statuses if evidence.c2pa else ())
        if s.source == "aimark" and s.kind == "informational" and s.code.startswith("aimark.text.")
    )
    if evidence.extracted is not None and evidence.extracted.partial:
        warnings += (InputError("aimark.text.partiallyRead", evidence.extracted.note),)
    return VerificationReport(filename, evidence.carrier, results, _layers(evidence), tuple(evidence.input_errors), warnings)
