"""The C2PA manifest aimark writes for AI-generated content, and how to read its facts back.

C2PA 2.2 (actions): a de-novo asset starts its first `c2pa.actions` assertion with `c2pa.created`, and
`digitalSourceType` shall be recorded with it; AI-generated media uses IPTC `trainedAlgorithmicMedia`.
aimark adds one custom assertion, `org.aimark.generation`, with the model, the watermark scheme and key
id (never the key), and the content id that GB 45438 Annex E `ProduceID` repeats.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import aimark

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_ASSERTION = "org.aimark.generation"
# How the persons exposed reach the provider's detection tool (EU Code of Practice on marking, as the
# issue paraphrases it; the AI Act guidelines paras 75-76 ask that detection be available to them).
DETECTION_ASSERTION = "org.aimark.detection"


def new_content_id() -> str:
    """A content id usable both in C2PA and as GB 45438 `ProduceID` (only Annex E's allowed characters)."""
    return f"aimark-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class GenerationInfo:
    """Facts about how the content was generated, recorded in the manifest."""

    model_name: str | None = None
    watermark_scheme: str | None = None
    watermark_key_id: str | None = None
    content_id: str = field(default_factory=new_content_id)
    title: str | None = None
    detection_endpoint: str | None = None  # URL of the provider's verification interface; never fetched by aimark
    generator_name: str = "aimark"
    generator_version: str = aimark.__version__

    def manifest_definition(self, media_type: str) -> dict[str, Any]:
        """The c2pa-python `Builder` definition for this content."""
        created: dict[str, Any] = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}
        if self.model_name:
            created["softwareAgent"] = {"name": self.model_name}
        generation = {
            "content_id": self.content_id,
            "model_name": self.model_name,
            "watermark_scheme": self.watermark_scheme,
            "watermark_key_id": self.watermark_key_id,
        }
        assertions: list[dict[str, Any]] = [
            {"label": "c2pa.actions", "data": {"actions": [created]}},
            {"label": GENERATION_ASSERTION, "data": {k: v for k, v in generation.items() if v is not None}},
        ]
        if self.detection_endpoint:
            assertions.append({"label": DETECTION_ASSERTION, "data": {"endpoint": self.detection_endpoint,
                                                                       "content_id": self.content_id}})
        return {
            "claim_generator_info": [{"name": self.generator_name, "version": self.generator_version}],
            "title": self.title or self.content_id,
            "format": media_type,
            "assertions": assertions,
        }


def summarise_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The facts a verifier reports from an active manifest (c2pa-rs `Reader.json()` shape)."""
    summary: dict[str, Any] = {
        "label": manifest.get("label"),
        "title": manifest.get("title"),
        "claim_generator": [g.get("name") for g in manifest.get("claim_generator_info", []) if isinstance(g, dict)],
        "signer": (manifest.get("signature_info") or {}).get("common_name"),
        "issuer": (manifest.get("signature_info") or {}).get("issuer"),
        "digital_source_type": None,
        "created": False,
        "generation": {},
        "detection_endpoint": None,
    }
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions") and isinstance(data, dict):
            actions = data.get("actions") or []
            if actions and isinstance(actions[0], dict) and actions[0].get("action") == "c2pa.created":
                summary["created"] = True
                summary["digital_source_type"] = actions[0].get("digitalSourceType")
        elif label == GENERATION_ASSERTION and isinstance(data, dict):
            summary["generation"] = data
        elif label == DETECTION_ASSERTION and isinstance(data, dict) and isinstance(data.get("endpoint"), str):
            summary["detection_endpoint"] = data["endpoint"][:2048]
    return summary
