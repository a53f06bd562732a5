"""One verifier over every layer (notice, C2PA, AIGC metadata, watermark) and every jurisdiction profile."""

from aimark.verify.profiles import PROFILES, Profile, Requirement
from aimark.verify.report import (
    MISSING, NOT_APPLICABLE, NOT_CHECKED, REQUIREMENT_STATUSES, SATISFIED, SCHEMA_VERSION, VERDICT_ERROR,
    VERDICT_NOT_SATISFIED, VERDICT_SATISFIED, VIOLATED, InputError, ProfileResult, RequirementResult,
    VerificationReport,
)
from aimark.verify.verifier import WATERMARK_KEYS, RegistryLookup, WatermarkCheck, verify

__all__ = [
    "PROFILES", "Profile", "Requirement", "MISSING", "NOT_APPLICABLE", "NOT_CHECKED", "REQUIREMENT_STATUSES",
    "SATISFIED", "SCHEMA_VERSION", "VERDICT_ERROR", "VERDICT_NOT_SATISFIED", "VERDICT_SATISFIED", "VIOLATED",
    "InputError", "ProfileResult", "RegistryLookup", "RequirementResult", "VerificationReport", "WATERMARK_KEYS", "WatermarkCheck",
    "verify",
]
