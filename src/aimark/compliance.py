"""One step from a file to a file that meets a jurisdiction's profile: every layer the profile asks for
that can be made from the file and the provider's settings, in the order the layers need.

  1. the visible notice (every profile): a comment or line in text and code, the first paragraph of a
     DOCX, a line at the foot of a PDF's last page;
  2. the GB 45438-2025 Annex E implicit label, for `cn` and `all`, in Markdown / DOCX / PDF, when the
     settings name a ContentProducer (no signature needed: the Chinese rules ask for none);
  3. a signed C2PA manifest over the result, when the settings hold signing credentials (the EU Code
     of Practice 1.1.1 asks for signed metadata in containerised text), carrying the provider's
     detection endpoint when configured; its content id is the AIGC ProduceID.

What could not be made is reported with the setting that would make it, never skipped in silence.

`remove_labels` undoes `label_file` exactly for unsigned text, Markdown, source code and PDF. A DOCX is
repacked when labelled and a signed file's manifest covers the labels, so neither can be restored to
its original bytes: `remove_labels` refuses them with `NotReversibleError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aimark.labels import (
    DEFAULT_LANGUAGE, LabelError, add_label, file_kind_for, notice_text, remove_label,
)
from aimark.labels.notices import check_profile_and_language
from aimark.labels.visible import decode_text
from aimark.provenance import (
    AIGC_CARRIERS, DOCX_CARRIER, MARKDOWN, PDF_CARRIER, GenerationInfo, detect_carrier, new_content_id, read_c2pa,
    sign_content,
)
from aimark.provenance import structured_text, unstructured_text

# AIGC metadata (lxml, pypdf) and signing (c2pa, cryptography) are imported where a file needs them:
# labelling a plain text file must start without them.
from aimark.settings import Settings

NOTICE, AIGC, C2PA = "notice", "aigc", "c2pa"
# Profiles whose checklist has the GB 45438 implicit label.
_AIGC_PROFILES = ("cn", "all")
# Kinds `remove_labels` gives back byte for byte (when unsigned).
REVERSIBLE_CARRIERS = ("text", "markdown", "code", "pdf")


class NotReversibleError(LabelError):
    """The file cannot be returned to its original bytes (say why); keep the original instead."""


@dataclass(frozen=True)
class LayerOutcome:
    layer: str
    written: bool
    detail: str


@dataclass(frozen=True)
class LabelResult:
    content: bytes
    carrier: str
    content_id: str
    layers: tuple[LayerOutcome, ...] = field(default_factory=tuple)

    @property
    def reversible(self) -> bool:
        signed = any(layer.layer == C2PA and layer.written for layer in self.layers)
        return self.carrier in REVERSIBLE_CARRIERS and not signed


def _already_signed(content: bytes, carrier: str, filename: str | None) -> bool:
    if carrier in (PDF_CARRIER, DOCX_CARRIER):
        # A manifest c2pa-rs could read; an unreadable file is reported by the step that cannot parse it.
        return read_c2pa(content, filename).manifest is not None
    text = content.decode("utf-8", "replace")
    return structured_text.BEGIN in text or unstructured_text.scan(text) != unstructured_text.WrapperScan()


def _add_notice(content: bytes, carrier: str, filename: str | None, profile: str, lang: str, position: str,
                lang_code: str | None) -> tuple[bytes, str]:
    text = notice_text(profile, lang)
    if carrier in (PDF_CARRIER, DOCX_CARRIER):
        from aimark.labels import documents  # pypdf and lxml, only for documents
    if carrier == PDF_CARRIER:
        return documents.add_pdf_notice(content, text, lang), f"foot of the last page: {text}"
    if carrier == DOCX_CARRIER:
        return documents.add_docx_notice(content, text), f"first paragraph: {text}"
    kind = file_kind_for(filename, lang_code)
    return add_label(content, kind, profile, lang, position), f"{position} of the {kind.name} file: {text}"


def label_file(
    content: bytes,
    filename: str | None,
    profile: str,
    settings: Settings,
    *,
    lang: str | None = None,
    position: str = "start",
    lang_code: str | None = None,
    info: GenerationInfo | None = None,
    aigc_label: str = "1",
) -> LabelResult:
    """`content` with every layer `profile` (kr, cn, eu, all) needs that `settings` allow; see the module doc."""
    lang = check_profile_and_language(profile, lang or settings.label.notice_language or DEFAULT_LANGUAGE.get(profile))
    carrier = detect_carrier(content, filename, lang_code)
    if carrier not in (PDF_CARRIER, DOCX_CARRIER):
        decode_text(content)  # invalid UTF-8 / UTF-16 is refused before anything is written
    if _already_signed(content, carrier, filename):
        raise LabelError("this file already carries a C2PA manifest; label first, then sign "
                         "(labelling now would invalidate the manifest)")
    info = info or GenerationInfo()
    content_id = info.content_id or new_content_id()
    layers: list[LayerOutcome] = []

    content, where = _add_notice(content, carrier, filename, profile, lang, position, lang_code)
    layers.append(LayerOutcome(NOTICE, True, where))

    producer = settings.provider.content_producer
    if profile in _AIGC_PROFILES and carrier in AIGC_CARRIERS:
        if producer:
            from aimark.provenance.aigc import AigcLabel, write_aigc

            content = write_aigc(carrier, content, AigcLabel.first_write(producer, content_id, aigc_label))
            layers.append(LayerOutcome(AIGC, True, f"GB 45438 Annex E label: ContentProducer {producer}, ProduceID {content_id}"
                                       + (" (Info /AIGC and XMP TC260:AIGC)" if carrier == PDF_CARRIER else "")))
        else:
            layers.append(LayerOutcome(AIGC, False, "no ContentProducer configured: set provider.content_producer in "
                                       "aimark.toml (or AIMARK_CONTENT_PRODUCER); cn.implicit-label needs it"))
    elif profile in _AIGC_PROFILES:
        layers.append(LayerOutcome(AIGC, False, f"{carrier} files have no AIGC metadata carrier (the notice carries the label)"))

    signing = settings.signing
    if signing.configured:
        from aimark.provenance.signing import SigningCredentials

        credentials = SigningCredentials.from_files(signing.certificate_chain, signing.private_key,
                                                    signing.timestamp_authority_url)
        info = GenerationInfo(model_name=info.model_name, watermark_scheme=info.watermark_scheme,
                              watermark_key_id=info.watermark_key_id, content_id=content_id, title=info.title,
                              detection_endpoint=info.detection_endpoint or settings.provider.detection_endpoint)
        content = sign_content(content, filename, credentials, info, lang_code=lang_code)
        endpoint = f", detection endpoint {info.detection_endpoint}" if info.detection_endpoint else ""
        layers.append(LayerOutcome(C2PA, True, f"signed C2PA manifest, content id {content_id}{endpoint}"))
    else:
        needed = "eu.signed-metadata and eu.machine-readable need it" if profile in ("eu", "all") else "optional for this profile"
        layers.append(LayerOutcome(C2PA, False, "no signing credentials configured: set signing.certificate_chain and "
                                   f"signing.private_key in aimark.toml ({needed})"))
    return LabelResult(content, carrier, content_id, tuple(layers))


def remove_labels(content: bytes, filename: str | None, *, lang_code: str | None = None) -> tuple[bytes, list[str]]:
    """The bytes `label_file` started from, and which layers were removed (empty: nothing of aimark's found).

    Raises NotReversibleError for a DOCX or a signed file (see the module doc).
    """
    carrier = detect_carrier(content, filename, lang_code)
    if carrier == DOCX_CARRIER:
        raise NotReversibleError("a labelled DOCX is a repacked package: aimark cannot give back its original bytes; "
                                 "keep the original file (unlabel restores text, Markdown, source code and PDF exactly)")
    if _already_signed(content, carrier, filename):
        raise NotReversibleError("the file carries a C2PA manifest that covers its labels: removing them would leave a broken "
                                 "manifest, and aimark cannot give back the unsigned bytes; keep the unsigned original")
    removed: list[str] = []
    if carrier == PDF_CARRIER:
        from aimark.provenance.pdf_revisions import remove_revisions

        restored, count = remove_revisions(content)
        return restored, ([f"{count} aimark revision(s) (notice, AIGC label)"] if count else [])
    if carrier == MARKDOWN:
        from aimark.provenance.aigc import AigcError, read_aigc, remove_markdown

        try:
            carries_aigc = read_aigc(MARKDOWN, content) is not None
        except AigcError:  # front matter that is not a YAML mapping: aimark never writes a label into one
            carries_aigc = False
        if carries_aigc:
            content, taken = remove_markdown(content)
            if taken:
                removed.append(AIGC)
    kind = file_kind_for(filename, lang_code) if (filename or lang_code) else None
    content, labels = remove_label(content, kind)
    if labels:
        removed.append(NOTICE)
    return content, removed


