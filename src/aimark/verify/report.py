"""The verification report: per jurisdiction, each requirement's status with its clause, and a verdict.

`VerificationReport.to_dict()` is the stable `aimark verify --json` document (schema in docs/labels.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "1"

SATISFIED, MISSING, VIOLATED = "satisfied", "missing", "violated"
NOT_APPLICABLE, NOT_CHECKED = "not_applicable", "not_checked"
REQUIREMENT_STATUSES = (SATISFIED, MISSING, VIOLATED, NOT_APPLICABLE, NOT_CHECKED)

VERDICT_SATISFIED, VERDICT_NOT_SATISFIED, VERDICT_ERROR = "satisfied", "not_satisfied", "error"


@dataclass(frozen=True)
class RequirementResult:
    id: str
    description: str
    clause: str
    layer: str
    mandatory: bool
    status: str
    detail: str

    @property
    def fails_verdict(self) -> bool:
        """A violation always fails; a missing or unchecked requirement fails only when mandatory."""
        return self.status == VIOLATED or (self.mandatory and self.status in (MISSING, NOT_CHECKED))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "clause": self.clause, "layer": self.layer,
                "mandatory": self.mandatory, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    title: str
    requirements: tuple[RequirementResult, ...]

    @property
    def verdict(self) -> str:
        return VERDICT_NOT_SATISFIED if any(r.fails_verdict for r in self.requirements) else VERDICT_SATISFIED

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "title": self.title, "verdict": self.verdict,
                "requirements": [r.to_dict() for r in self.requirements]}


@dataclass(frozen=True)
class InputError:
    """A coded message: the content could not be read as its kind (invalid UTF-8, not a ZIP, broken PDF ...),
    or, in `warnings`, something found in it that deserves a look."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class VerificationReport:
    """Everything `verify` found: the layers as evidence, and the profiles judged on them."""

    filename: str | None
    carrier: str
    profiles: tuple[ProfileResult, ...]
    layers: dict[str, Any] = field(default_factory=dict)
    input_errors: tuple[InputError, ...] = ()
    # Findings that are not a rule's failure but must not pass silently (hidden characters, non-NFC text).
    warnings: tuple[InputError, ...] = ()

    @property
    def verdict(self) -> str:
        if self.input_errors:
            return VERDICT_ERROR
        if all(p.verdict == VERDICT_SATISFIED for p in self.profiles):
            return VERDICT_SATISFIED
        return VERDICT_NOT_SATISFIED

    @property
    def satisfied(self) -> bool:
        return self.verdict == VERDICT_SATISFIED

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "file": self.filename,
            "carrier": self.carrier,
            "verdict": self.verdict,
            "input_errors": [e.to_dict() for e in self.input_errors],
            "warnings": [w.to_dict() for w in self.warnings],
            "profiles": [p.to_dict() for p in self.profiles],
            "layers": self.layers,
        }
