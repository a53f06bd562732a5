"""notice, sign, verify: notice sentences, provenance, and the one verifier, from the shell
(`label` and `unlabel`, which make every layer a profile needs, are in compliance_commands.py).

Exit codes: 0 done / satisfied, 1 verification not satisfied, 2 error (bad input, bad option, missing tool).
Private keys are read from files and never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from aimark.cli.app import app
from aimark.cli.io import MAX_INPUT_BYTES, guarded, read_trust_anchors
from aimark.files import write_atomic
from aimark.labels import ADVANCE_NOTICE_TEXT, UnknownFileKindError, UnknownProfileError, notice_text

# aimark.provenance (c2pa, cryptography, pypdf, lxml) and aimark.verify are imported by the commands that use
# them: every `aimark` start imports this module, and `aimark detect` must not pay for them.

EXIT_OK, EXIT_NOT_SATISFIED, EXIT_ERROR = 0, 1, 2
_STATUS_STYLE = {"satisfied": "green", "missing": "yellow", "violated": "bold red", "not_applicable": "dim", "not_checked": "cyan"}

_err = Console(stderr=True, highlight=False)


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


def _read_input(path: str) -> tuple[bytes, Optional[str]]:
    """The bytes of FILE, or of standard input for '-' (then there is no file name to go by)."""
    try:
        if path == "-":
            data, name = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1), None
        else:
            with open(path, "rb") as handle:
                data, name = handle.read(MAX_INPUT_BYTES + 1), path
    except OSError as err:
        _fail(f"cannot read {path}: {err.strerror or type(err).__name__}")
    if len(data) > MAX_INPUT_BYTES:
        _fail(f"{path if path != '-' else 'standard input'} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB")
    return data, name


def _write_output(data: bytes, output: Optional[Path]) -> None:
    if output is None or str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        # Atomic: `-o` may name the input itself, and a failed write must leave it whole.
        write_atomic(output, data)
    except OSError as err:
        _fail(f"cannot write {output}: {err.strerror or type(err).__name__}")


_OUTPUT = typer.Option(None, "--output", "-o", help="Write here instead of standard output.")
_LANG_CODE = typer.Option(None, "--lang-code", help="File kind (python, js, c, html, markdown ...) instead of the extension.")


@app.command()
@guarded
def notice(
    profile: str = typer.Option(..., "--profile", "-p", help="kr, cn, eu or all."),
    lang: Optional[str] = typer.Option(None, "--lang", help="ko, ja, zh or en."),
    advance: bool = typer.Option(False, "--advance", help="The advance notice for the service (AI Basic Act Art. 31(1))."),
) -> None:
    """Print a notice sentence, e.g. for a user interface or terms of service."""
    try:
        if advance:
            language = lang or "ko"
            if language not in ADVANCE_NOTICE_TEXT:
                raise UnknownProfileError(f"unknown language {language!r}; choose one of {', '.join(ADVANCE_NOTICE_TEXT)}")
            typer.echo(ADVANCE_NOTICE_TEXT[language])
        else:
            typer.echo(notice_text(profile, lang))
    except UnknownProfileError as err:
        _fail(str(err))


@app.command()
@guarded
def sign(
    file: str = typer.Argument(..., metavar="FILE|-", help="File to sign, or - for standard input."),
    cert: Path = typer.Option(..., "--cert", help="PEM certificate chain, signer first."),
    private_key: Path = typer.Option(..., "--private-key", help="PEM private key of the signer (never printed)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model that generated the content."),
    watermark_scheme: Optional[str] = typer.Option(None, "--watermark-scheme", help="Watermark scheme, if any."),
    watermark_key_id: Optional[str] = typer.Option(None, "--watermark-key-id", help="Watermark key id (not the key)."),
    content_id: Optional[str] = typer.Option(None, "--content-id", help="Content id (default: a new one)."),
    aigc_producer: Optional[str] = typer.Option(None, "--aigc-producer", help="Write GB 45438 AIGC metadata (md/docx/pdf) with this ContentProducer."),
    aigc_label: str = typer.Option("1", "--aigc-label", help="AIGC Label: 1 generated, 2 possibly, 3 suspected."),
    tsa_url: Optional[str] = typer.Option(None, "--tsa-url", help="RFC 3161 timestamp authority URL."),
    lang_code: Optional[str] = _LANG_CODE,
    output: Optional[Path] = _OUTPUT,
) -> None:
    """Embed a signed C2PA manifest (and, with --aigc-producer, GB 45438 AIGC metadata)."""
    from aimark.provenance import GenerationInfo, ProvenanceError, SigningCredentials, add_provenance, new_content_id

    content, filename = _read_input(file)
    info = GenerationInfo(model_name=model, watermark_scheme=watermark_scheme, watermark_key_id=watermark_key_id,
                          content_id=content_id or new_content_id())
    try:
        credentials = SigningCredentials.from_files(cert, private_key, tsa_url)
        signed = add_provenance(content, filename, credentials, info, aigc_producer=aigc_producer,
                                aigc_label=aigc_label, lang_code=lang_code)
    except (ProvenanceError, UnknownFileKindError) as err:
        _fail(str(err))
    _write_output(signed, output)
    _err.print(f"content id: {info.content_id}")


def _load_watermark_check(key: Path) -> Callable[..., dict]:
    try:
        # the engine's detector (torch, transformers), imported only when asked for
        from aimark.verify.watermark import watermark_check_from_keyfile
    except ImportError as err:
        _fail(f"--key needs the watermark detector (aimark.verify.watermark_check_from_keyfile), which is not available: {err}")
    from aimark.detect import TokenizerMismatchError
    from aimark.engines import ModelLoadError
    from aimark.keys import KeyFileError

    try:
        return watermark_check_from_keyfile(str(key))
    except (KeyFileError, TokenizerMismatchError, ModelLoadError) as err:  # aimark's messages never hold secrets
        _fail(f"cannot use watermark key {key}: {' '.join(str(err).split())}")
    except Exception as err:  # noqa: BLE001 - one line; a foreign message could quote the file, so show its type only
        _fail(f"cannot load watermark key {key}: {type(err).__name__}")


def _open_registry(url: str):
    from aimark.registry import Registry, RegistryError  # SQLAlchemy, only when asked for

    try:
        return Registry(None if url == "default" else url)
    except RegistryError as err:
        _fail(str(err))


def _print_report(report, console: Console) -> None:
    console.print(f"[bold]{report.filename or '<stdin>'}[/] ({report.carrier})")
    for error in report.input_errors:
        console.print(f"[bold red]input error[/] {error.code}: {error.message}")
    for warning in report.warnings:
        console.print(f"[yellow]warning[/] {warning.code}: {warning.message}")
    for match in report.layers.get("registry", {}).get("matches", []):
        console.print(f"registry: {match['match']} copy of {match['content_id']}, issued on {match['issued_at']} "
                      f"by {match['model']} (similarity {match['similarity']:.0%})", markup=False)
    for profile in report.profiles:
        table = Table(title=f"{profile.title} — {profile.verdict}", title_justify="left", show_lines=False)
        for column in ("requirement", "status", "clause", "detail"):
            table.add_column(column, overflow="fold")
        for requirement in profile.requirements:
            style = _STATUS_STYLE.get(requirement.status, "")
            marker = "" if requirement.mandatory else " (optional)"
            table.add_row(requirement.description + marker, f"[{style}]{requirement.status}[/]", requirement.clause, requirement.detail)
        console.print(table)
        # Reasons in full, unwrapped, so they can be read (and grepped) whatever the terminal width.
        for requirement in profile.requirements:
            if requirement.fails_verdict:
                console.print(f"  {requirement.status} {requirement.id}: {requirement.detail}", soft_wrap=True, markup=False)
    colour = {"satisfied": "green", "not_satisfied": "red"}.get(report.verdict, "bold red")
    console.print(f"verdict: [{colour}]{report.verdict}[/]")


@app.command(name="verify")
@guarded
def verify_command(
    files: list[str] = typer.Argument(..., metavar="FILE|DIR|-...", help="Files or folders to verify, or - for standard input."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="kr, cn, eu or all (default: the settings' default_profile)."),
    key: Optional[Path] = typer.Option(None, "--key", help="Watermark key file: also check the watermark layer."),
    trust: Optional[Path] = typer.Option(None, "--trust", help="PEM trust anchors the C2PA signer must chain to."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (schema: docs/labels.md)."),
    registry: Optional[str] = typer.Option(
        None, "--registry", metavar="DB_URL|default",
        help="Also look the text up in a registry of issued outputs (aimark serve's; 'default': AIMARK_DB_URL or the SQLite file)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write JUnit XML here: one testcase per file (for CI)."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML compliance report here."),
    settings_file: Optional[Path] = typer.Option(None, "--settings", help="Settings file (default: aimark.toml found from here upwards)."),
) -> None:
    """Check every layer against a jurisdiction's rules. Exit 0 satisfied, 1 not satisfied, 2 error.

    A folder is walked (git's file list inside a repository, else .gitignore honoured) and every file of a
    kind aimark knows is checked; the exit code is then the worst file's. --profile, --key, --trust and
    --registry default to the settings (aimark.toml, AIMARK_*).
    """
    from aimark.cli.compliance_commands import settings_for
    from aimark.verify import PROFILES, VERDICT_ERROR, VERDICT_SATISFIED, verify

    settings = settings_for(settings_file, files[0])
    profile = profile or settings.label.default_profile
    key = key or settings.watermark.key
    trust = trust or settings.signing.trust_anchors
    registry = registry or settings.registry.url
    if profile is None:
        _fail("no profile: pass --profile kr|cn|eu|all or set label.default_profile in aimark.toml (aimark init)")
    if profile != "all" and profile not in PROFILES:
        _fail(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)} or all")
    many = len(files) > 1 or junit is not None or any(Path(f).is_dir() for f in files if f != "-")
    if many and "-" in files:
        _fail("standard input (-) is verified on its own, not with files or folders")
    content, filename = _read_input(files[0]) if not many else (b"", None)
    anchors = read_trust_anchors(trust)
    watermark_check = _load_watermark_check(key) if key is not None else None
    opened = _open_registry(registry) if registry is not None else None
    reports = []
    try:
        def check(data: bytes, name: Optional[str]):
            report = verify(data, name, profile, trust_anchors=anchors, watermark_check=watermark_check,
                            registry_lookup=opened.lookup_dict if opened else None)
            reports.append(report)
            return report

        if many:
            from aimark.cli.tree import verify_many

            code = verify_many(files, profile, check, as_json=as_json, junit=junit, limit=MAX_INPUT_BYTES)
            _write_html_report(report_path, reports)
            raise typer.Exit(code)
        report = check(content, filename)
    finally:
        if opened is not None:
            opened.close()
    _write_html_report(report_path, reports)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_report(report, Console(highlight=False, soft_wrap=False))
    if report.verdict == VERDICT_ERROR:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_OK if report.verdict == VERDICT_SATISFIED else EXIT_NOT_SATISFIED)


def _write_html_report(path: Optional[Path], reports: list) -> None:
    if path is None:
        return
    from aimark.verify.html_report import render_html_report

    try:
        write_atomic(path, render_html_report(reports).encode("utf-8"))
    except OSError as err:
        _fail(f"cannot write {path}: {err.strerror or type(err).__name__}")
