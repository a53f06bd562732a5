"""The provider's settings in one place: `aimark.toml` (or `[tool.aimark]` in pyproject.toml), then
AIMARK_* environment variables over it, then command-line flags over both.

The file is found by walking up from a start directory (the current one, or the labelled file's) to the
filesystem root; the first `aimark.toml`, or `pyproject.toml` holding a `[tool.aimark]` table, wins.
Relative paths in a file are relative to that file's directory, so a checked-in settings file works
from any working directory. Settings hold paths to secrets (signing key, watermark key), never secrets.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

SETTINGS_FILE = "aimark.toml"
PYPROJECT_FILE = "pyproject.toml"
MAX_SETTINGS_BYTES = 256 * 1024

Profile = Literal["kr", "cn", "eu", "all"]
Language = Literal["ko", "ja", "zh", "en"]

# GB 45438-2025 Annex E: field values use only 0x21, 0x23-0x5B, 0x5D-0x7E (no space, quote or backslash).
_ANNEX_E_VALUE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_ENDPOINT = re.compile(r"https?://[^\s/?#@]+(?:/[^\s]*)?")


class SettingsError(ValueError):
    """The settings file or an AIMARK_* variable is unreadable or invalid; the message names where and which field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSettings(_Section):
    # GB 45438-2025 Annex E `ContentProducer`: the provider's name or code.
    content_producer: Optional[str] = None
    # Where the persons exposed can check content (AI Act Art. 50(2) guidelines paras 75-76; Code of Practice 2.1).
    detection_endpoint: Optional[str] = None

    @field_validator("content_producer")
    @classmethod
    def _annex_e(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ANNEX_E_VALUE.fullmatch(value):
            raise ValueError("must be printable ASCII without spaces, quotes or backslashes (GB 45438-2025 Annex E)")
        return value

    @field_validator("detection_endpoint")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _ENDPOINT.fullmatch(value):
            raise ValueError("must be an http:// or https:// URL with a host and no credentials")
        return value


class LabelSettings(_Section):
    default_profile: Optional[Profile] = None
    notice_language: Optional[Language] = None


class SigningSettings(_Section):
    certificate_chain: Optional[Path] = None  # PEM, signer first
    private_key: Optional[Path] = None  # PEM; only its path is held here
    trust_anchors: Optional[Path] = None  # PEM roots `verify` checks signers against
    timestamp_authority_url: Optional[str] = None

    @property
    def configured(self) -> bool:
        return self.certificate_chain is not None and self.private_key is not None


class WatermarkSettings(_Section):
    key: Optional[Path] = None  # the key file `verify` checks the watermark with


class RegistrySettings(_Section):
    url: Optional[str] = None  # SQLAlchemy URL, or "default" (AIMARK_DB_URL, else aimark's SQLite file)


class Settings(_Section):
    provider: ProviderSettings = ProviderSettings()
    label: LabelSettings = LabelSettings()
    signing: SigningSettings = SigningSettings()
    watermark: WatermarkSettings = WatermarkSettings()
    registry: RegistrySettings = RegistrySettings()
    source: Optional[Path] = None  # the file these came from (None: defaults and environment only)

    def with_overrides(self, **sections: Mapping[str, Any]) -> "Settings":
        """A copy with non-None values replaced, e.g. `with_overrides(label={"default_profile": "cn"})` (flags)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        return _validated(data, "command-line options")


# (section, field) <- environment variable. Paths from the environment are relative to the working directory.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "AIMARK_CONTENT_PRODUCER": ("provider", "content_producer"),
    "AIMARK_DETECTION_ENDPOINT": ("provider", "detection_endpoint"),
    "AIMARK_PROFILE": ("label", "default_profile"),
    "AIMARK_NOTICE_LANGUAGE": ("label", "notice_language"),
    "AIMARK_SIGNING_CERT": ("signing", "certificate_chain"),
    "AIMARK_SIGNING_KEY": ("signing", "private_key"),
    "AIMARK_TRUST_ANCHORS": ("signing", "trust_anchors"),
    "AIMARK_TSA_URL": ("signing", "timestamp_authority_url"),
    "AIMARK_WATERMARK_KEY": ("watermark", "key"),
    "AIMARK_REGISTRY": ("registry", "url"),
}
_PATH_FIELDS = {("signing", "certificate_chain"), ("signing", "private_key"), ("signing", "trust_anchors"), ("watermark", "key")}


def _describe(err: ValidationError, where: str) -> str:
    problems = []
    for item in err.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        problems.append(f"{location}: {message}")
    return f"{where}: " + "; ".join(problems)


def _validated(data: Mapping[str, Any], where: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise SettingsError(_describe(err, where)) from None


def find_settings_file(start: Path | None = None) -> Path | None:
    """The nearest `aimark.toml`, or pyproject.toml with `[tool.aimark]`, from `start` up to the root."""
    directory = (start or Path.cwd()).resolve()
    if directory.is_file() or not directory.exists():
        directory = directory.parent
    for candidate in (directory, *directory.parents):
        own = candidate / SETTINGS_FILE
        if own.is_file():
            return own
        pyproject = candidate / PYPROJECT_FILE
        if pyproject.is_file() and "aimark" in (_read_toml(pyproject).get("tool") or {}):
            return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as err:
        raise SettingsError(f"{path}: cannot read ({err.strerror or type(err).__name__})") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise SettingsError(f"{path}: larger than {MAX_SETTINGS_BYTES // 1024} KiB")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise SettingsError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"{path}: not valid TOML ({err})") from None


def _file_data(path: Path) -> dict[str, Any]:
    data = _read_toml(path)
    if path.name == PYPROJECT_FILE:
        data = (data.get("tool") or {}).get("aimark") or {}
        where = f"{path} [tool.aimark]"
    else:
        where = str(path)
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: [tool.aimark] must be a table")
    validated = _validated(data, where)  # field errors name the file before paths are resolved
    resolved = validated.model_dump(exclude={"source"})
    for section, name in _PATH_FIELDS:
        value = resolved[section][name]
        if value is not None and not Path(value).is_absolute():
            resolved[section][name] = path.parent / value
    return resolved


def load_settings(start: Path | None = None, environ: Mapping[str, str] | None = None,
                  path: Path | None = None) -> Settings:
    """Settings from `path` (or the file found from `start`), with AIMARK_* variables over them."""
    environ = os.environ if environ is None else environ
    source = path or find_settings_file(start)
    data: dict[str, Any] = _file_data(source) if source is not None else Settings().model_dump(exclude={"source"})
    from_environment = {name: value for name, value in environ.items() if name in ENVIRONMENT and value != ""}
    for name, value in from_environment.items():
        section, field = ENVIRONMENT[name]
        data[section][field] = value
    if from_environment:
        try:
            Settings.model_validate(data)
        except ValidationError as err:
            fields = {f"{s}.{f}": n for n, (s, f) in ENVIRONMENT.items()}
            names = sorted({fields.get(".".join(map(str, e["loc"][:2])), "?") for e in err.errors()} & set(from_environment))
            raise SettingsError(_describe(err, f"environment ({', '.join(names) or 'AIMARK_*'})")) from None
    data["source"] = source
    return _validated(data, str(source or "settings"))


STARTER_FILE = '''\
# aimark settings for this provider. Commands run in this directory or below read this file;
# AIMARK_* environment variables override it, and command-line flags override both.
# Relative paths are relative to this file. Keep secrets (keys) in files outside version control.

[provider]
# GB 45438-2025 Annex E ContentProducer: your service's name or code (printable ASCII, no spaces).
# Needed for the Chinese implicit label (AIGC metadata in Markdown, DOCX and PDF).
# content_producer = "001191440300708461136T1XGW3"        # AIMARK_CONTENT_PRODUCER
# Where people can check your content (EU Code of Practice; written into the C2PA manifest).
# detection_endpoint = "https://example.com/v1/verify"    # AIMARK_DETECTION_ENDPOINT

[label]
# kr | cn | eu | all: the profile `aimark label` and `aimark verify` use when --profile is not given.
default_profile = "{profile}"                                # AIMARK_PROFILE
# ko | ja | zh | en (default: the profile's own language).
# notice_language = "ko"                                  # AIMARK_NOTICE_LANGUAGE

[signing]
# A C2PA signing certificate chain (signer first) and its private key: `aimark label` then also
# embeds a signed C2PA manifest (the EU Code of Practice asks for signed metadata in PDF, DOCX, code).
# certificate_chain = "pki/signer_chain.pem"              # AIMARK_SIGNING_CERT
# private_key = "pki/signer_key.pem"                      # AIMARK_SIGNING_KEY
# Roots `aimark verify` trusts signers under.
# trust_anchors = "pki/trust_anchor.pem"                  # AIMARK_TRUST_ANCHORS
# timestamp_authority_url = "http://timestamp.example.com" # AIMARK_TSA_URL

[watermark]
# The watermark key file `aimark verify` checks the watermark layer with (never its contents here).
# key = "keys/provider.key"                               # AIMARK_WATERMARK_KEY

[registry]
# Where issued outputs are recorded: a SQLAlchemy URL, or "default" (AIMARK_DB_URL, else aimark's SQLite file).
# url = "default"                                         # AIMARK_REGISTRY
'''


def starter_file(profile: str = "all") -> str:
    """The commented file `aimark init` writes; it loads as valid settings as it stands."""
    if profile not in ("kr", "cn", "eu", "all"):
        raise SettingsError(f"unknown profile {profile!r}; choose from kr, cn, eu, all")
    return STARTER_FILE.replace("{profile}", profile)
