"""`aimark verify --report report.html`: one self-contained page an auditor can open without a server.

Per file: the verdict, each jurisdiction's checklist (requirement, status, clause, the evidence behind
the line), and the layers found (notice, C2PA, AIGC, watermark, registry). The look is the service
page's own stylesheet, inlined. Nothing external is loaded and nothing runs: the page has no script,
and its Content-Security-Policy forbids any fetch. Every value from a file (names, notice text,
manifest fields, messages) is HTML-escaped, since a file under audit may be hostile.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from html import escape
from pathlib import Path

import aimark
from aimark.verify.report import VerificationReport

# The service's page stylesheet, read as a file (verify/ never imports service/).
_STYLESHEET = Path(aimark.__file__).resolve().parent / "service" / "static" / "style.css"
_REPORT_CSS = """
.file { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 4px 16px 16px; margin: 16px 0; }
.file > h2 { overflow-wrap: anywhere; }
.evidence pre { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--bg); border: 1px solid var(--line);
  border-radius: 6px; padding: 8px; font-size: .85rem; margin: 0; }
.summary td.verdict-cell { font-weight: 700; }
.verdict-cell.satisfied { color: var(--good); } .verdict-cell.not_satisfied, .verdict-cell.error { color: var(--bad); }
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"
_STATUS_WORDS = {"satisfied": "satisfied", "missing": "missing", "violated": "violated",
                 "not_applicable": "not applicable", "not_checked": "not checked"}


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _stylesheet() -> str:
    try:
        css = _STYLESHEET.read_text(encoding="utf-8")
    except OSError:
        css = ""  # an installation without the page assets still gets a readable (unstyled) report
    # Inlined inside <style>: a stylesheet can never close the element early.
    return (css + _REPORT_CSS).replace("</", "<\\/")


def _checklist(profile) -> str:
    rows = []
    for requirement in profile.requirements:
        optional = "" if requirement.mandatory else ' <span class="muted">(optional)</span>'
        rows.append(
            "<tr>"
            f'<td data-label="requirement">{_text(requirement.description)}{optional}<br><span class="muted">{_text(requirement.id)}</span></td>'
            f'<td data-label="status" class="status {_text(requirement.status)}">{_text(_STATUS_WORDS.get(requirement.status, requirement.status))}</td>'
            f'<td data-label="clause">{_text(requirement.clause)}</td>'
            f'<td data-label="evidence">{_text(requirement.detail)}</td>'
            "</tr>"
        )
    return (f'<h3 class="profile-title {_text(profile.verdict)}">{_text(profile.title)}: {_text(profile.verdict.replace("_", " "))}</h3>'
            '<table class="checklist"><thead><tr><th>requirement</th><th>status</th><th>clause</th><th>evidence</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _evidence(report: VerificationReport) -> str:
    layers = report.layers or {}
    items = []
    for name in ("notice", "c2pa", "aigc", "watermark", "registry", "text"):
        if layers.get(name) is None:
            continue
        value = layers[name]
        if name == "c2pa":  # the statuses and manifest facts, not the raw store
            value = {k: v for k, v in value.items() if k != "manifest_store"}
        rendered = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        items.append(f"<dt>{_text(name)}</dt><dd><pre>{_text(rendered)}</pre></dd>")
    return f'<details class="evidence"><summary>Evidence: every layer as read</summary><dl>{"".join(items)}</dl></details>'


def _file_section(index: int, report: VerificationReport) -> str:
    name = report.filename or "<standard input>"
    parts = [f'<section class="file" id="file-{index}"><h2>{_text(name)}</h2>',
             f'<p class="muted">kind: {_text(report.carrier)}</p>',
             f'<div class="verdict {_text(report.verdict)}">verdict: {_text(report.verdict.replace("_", " "))}</div>']
    for error in report.input_errors:
        parts.append(f'<p class="error">input error {_text(error.code)}: {_text(error.message)}</p>')
    for warning in report.warnings:
        parts.append(f"<p>warning {_text(warning.code)}: {_text(warning.message)}</p>")
    parts += [_checklist(profile) for profile in report.profiles]
    parts += [_evidence(report), "</section>"]
    return "".join(parts)


def render_html_report(reports: Iterable[VerificationReport], *, generated_at: datetime.datetime | None = None) -> str:
    """The whole page for one or more files' reports."""
    reports = list(reports)
    when = (generated_at or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    summary_rows = "".join(
        f'<tr><td data-label="file"><a href="#file-{i}">{_text(r.filename or "<standard input>")}</a></td>'
        f'<td data-label="kind">{_text(r.carrier)}</td>'
        f'<td data-label="profiles">{_text(", ".join(p.profile for p in r.profiles))}</td>'
        f'<td data-label="verdict" class="verdict-cell {_text(r.verdict)}">{_text(r.verdict.replace("_", " "))}</td></tr>'
        for i, r in enumerate(reports)
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>aimark compliance report</title>"
        f"<style>{_stylesheet()}</style></head><body>"
        '<header><h1>aimark compliance report</h1></header><main>'
        f'<p class="intro">Generated {_text(when)} by aimark {_text(aimark.__version__)} from the files themselves '
        "(offline: nothing named in a file was fetched). Each line gives the rule's clause and the evidence it was judged on.</p>"
        '<table class="checklist summary"><thead><tr><th>file</th><th>kind</th><th>profiles</th><th>verdict</th></tr></thead>'
        f"<tbody>{summary_rows}</tbody></table>"
        + "".join(_file_section(i, r) for i, r in enumerate(reports))
        + "</main><footer>aimark verify --report</footer></body></html>\n"
    )
