"""init, label, unlabel: the provider's settings file, and one command that makes a file meet a profile.

Settings come from aimark.toml (or [tool.aimark] in pyproject.toml) found from the working directory
up (else from the file's directory up), AIMARK_* variables over it, and these commands' flags over both.
Exit codes: 0 done, 2 error. What `label` wrote, and what it could not write and why, goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from aimark.cli.app import app
from aimark.cli.io import guarded
from aimark.cli.label_commands import _LANG_CODE, _OUTPUT, _err, _fail, _read_input, _write_output

if TYPE_CHECKING:
    from aimark.settings import Settings

# aimark.settings builds its pydantic models at import (about 0.25 s): imported where a command needs settings,
# so `aimark detect` and every command registered beside these do not pay for it at start.

_SETTINGS = typer.Option(None, "--settings", help="Settings file (default: aimark.toml found from here upwards).")


def settings_for(explicit: Optional[Path], file: Optional[str] = None) -> Settings:
    """The settings a command runs with: `--settings`, else the file found from the cwd, else from FILE's folder."""
    from aimark.settings import SettingsError, find_settings_file, load_settings

    try:
        if explicit is not None:
            return load_settings(path=explicit)
        start = None
        if find_settings_file(Path.cwd()) is None and file and file != "-":
            start = Path(file).resolve().parent
        return load_settings(start)
    except SettingsError as err:
        _fail(str(err))


@app.command()
@guarded
def init(
    directory: Path = typer.Argument(Path("."), help="Where to write aimark.toml."),
    profile: str = typer.Option("all", "--profile", "-p", help="Default profile written into the file: kr, cn, eu or all."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing aimark.toml."),
) -> None:
    """Write a commented aimark.toml to start from (ContentProducer, signing, profile, language, keys)."""
    from aimark.files import write_atomic
    from aimark.settings import SETTINGS_FILE, SettingsError, starter_file

    try:
        text = starter_file(profile)
    except SettingsError as err:
        _fail(str(err))
    target = directory / SETTINGS_FILE
    if target.exists() and not force:
        _fail(f"{target} exists; pass --force to overwrite it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text.encode("utf-8"))
    except OSError as err:
        _fail(f"cannot write {target}: {err.strerror or type(err).__name__}")
    _err.print(f"wrote {target}; set provider.content_producer (GB 45438) and [signing] (C2PA) for your service",
               markup=False, soft_wrap=True)


@app.command()
@guarded
def label(
    file: str = typer.Argument(..., metavar="FILE|-", help="File to label, or - for standard input."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="kr, cn, eu or all (default: the settings' default_profile)."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Notice language: ko, ja, zh or en (default: settings, else the profile's)."),
    position: str = typer.Option("start", "--position", help="start or end of the text (PDF: always the foot of the last page)."),
    content_producer: Optional[str] = typer.Option(None, "--content-producer", help="GB 45438 ContentProducer (overrides the settings)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model that generated the content (C2PA manifest)."),
    content_id: Optional[str] = typer.Option(None, "--content-id", help="Content id for C2PA and AIGC ProduceID (default: a new one)."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign even when the settings hold credentials."),
    settings_file: Optional[Path] = _SETTINGS,
    lang_code: Optional[str] = _LANG_CODE,
    output: Optional[Path] = _OUTPUT,
) -> None:
    """Make FILE meet a profile: notice, GB 45438 AIGC metadata, signed C2PA manifest (each when possible)."""
    from aimark.compliance import label_file
    from aimark.labels import LabelError, UnknownFileKindError, UnknownProfileError
    from aimark.provenance import GenerationInfo, ProvenanceError, new_content_id
    from aimark.settings import SettingsError

    settings = settings_for(settings_file, file)
    try:
        settings = settings.with_overrides(provider={"content_producer": content_producer})
        if no_sign:
            settings = settings.model_copy(update={"signing": settings.signing.model_copy(update={"certificate_chain": None})})
    except SettingsError as err:
        _fail(str(err))
    chosen = profile or settings.label.default_profile
    if chosen is None:
        _fail("no profile: pass --profile kr|cn|eu|all or set label.default_profile in aimark.toml (aimark init)")
    content, filename = _read_input(file)
    info = GenerationInfo(model_name=model, content_id=content_id or new_content_id())
    try:
        result = label_file(content, filename, chosen, settings, lang=lang, position=position, lang_code=lang_code, info=info)
    except (LabelError, UnknownFileKindError, UnknownProfileError, ProvenanceError) as err:
        _fail(err.message if isinstance(err, ProvenanceError) else str(err))
    _write_output(result.content, output)
    for layer in result.layers:
        _err.print(f"{'wrote' if layer.written else 'not written'} {layer.layer}: {layer.detail}", markup=False, soft_wrap=True)
    if not result.reversible:
        _err.print(f"note: `aimark unlabel` cannot give back the original bytes of this {'signed ' if result.carrier != 'docx' else ''}"
                   f"{result.carrier} file; keep the original", markup=False, soft_wrap=True)


@app.command()
@guarded
def unlabel(
    file: str = typer.Argument(..., metavar="FILE|-", help="File to unlabel, or - for standard input."),
    lang_code: Optional[str] = _LANG_CODE,
    output: Optional[Path] = _OUTPUT,
) -> None:
    """Remove exactly what `aimark label` added (text, Markdown, source code and PDF return byte for byte;
    a DOCX or a signed file cannot, and is refused)."""
    from aimark.compliance import NotReversibleError, remove_labels
    from aimark.labels import LabelError, UnknownFileKindError
    from aimark.provenance import ProvenanceError

    content, filename = _read_input(file)
    try:
        restored, removed = remove_labels(content, filename, lang_code=lang_code)
    except NotReversibleError as err:
        _fail(str(err))
    except (LabelError, UnknownFileKindError) as err:
        _fail(str(err))
    except ProvenanceError as err:
        _fail(err.message)
    if not removed:
        _err.print("note: no aimark label found; output is the input unchanged")
    _write_output(restored, output)
