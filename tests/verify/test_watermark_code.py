"""The verifier's watermark layer with the code gate: the file name (or a guess) picks it, the detail names it.

Profile cn: its watermark requirement applies to every file kind (the EU one exempts code files).
"""

from __future__ import annotations

import pytest

from aimark.verify import MISSING, SATISFIED, verify
from tests.helpers import PROGRAM, fixed_key

LONG_PROGRAM = (PROGRAM + "\n\n") * 4


def _watermark_requirement(report):
    return next(r for p in report.profiles for r in p.requirements if r.id == "cn.watermark")


def _result(watermarked: bool, code_language: str | None) -> dict:
    return {"watermarked": watermarked, "p_value": 1e-12 if watermarked else 0.4, "scheme": "synthid", "key_id": "k",
            "num_scored_tokens": 300, "code_language": code_language}


def test_a_check_that_takes_filename_gets_it_and_a_text_only_check_still_works() -> None:
    seen = []

    def check(text: str, filename: str | None = None) -> dict:
        seen.append(filename)
        return _result(True, "python")

    report = verify(LONG_PROGRAM.encode(), "solution.py", "cn", watermark_check=check)
    assert seen == ["solution.py"]
    assert _watermark_requirement(report).status == SATISFIED
    assert verify(LONG_PROGRAM.encode(), "solution.py", "cn", watermark_check=lambda text: _result(True, None)).layers["watermark"]["result"]
    keyword_only = []
    verify(LONG_PROGRAM.encode(), None, "cn", watermark_check=lambda text, **extra: keyword_only.append(extra) or _result(True, None))
    assert keyword_only == [{"filename": None}]


@pytest.mark.parametrize("watermarked, status", [(True, SATISFIED), (False, MISSING)])
def test_detail_names_the_code_gate(watermarked, status) -> None:
    report = verify(LONG_PROGRAM.encode(), "solution.py", "cn", watermark_check=lambda text: _result(watermarked, "python"))
    requirement = _watermark_requirement(report)
    assert requirement.status == status and "code gate: python" in requirement.detail
    assert report.layers["watermark"]["result"]["code_language"] == "python"
    prose = verify(LONG_PROGRAM.encode(), "a.txt", "cn", watermark_check=lambda text: _result(watermarked, None))
    assert "code gate" not in _watermark_requirement(prose).detail


@pytest.fixture(scope="module")
def key_path(tmp_path_factory, tiny_model_dir):
    from aimark.keys import WatermarkKey, save_key

    key = fixed_key("synthid", "verify-code")
    return save_key(WatermarkKey(key.key_id, key.scheme, dict(key.params), key.secret, model=str(tiny_model_dir)),
                    tmp_path_factory.mktemp("keys") / "key.json")


@pytest.mark.parametrize("filename, text, language", [
    ("solution.py", LONG_PROGRAM, "python"),
    ("solution.ts", LONG_PROGRAM, "typescript"),                        # the extension wins over the text
    ("answer.md", "Intro.\n\n```python\n" + LONG_PROGRAM + "```\n", "markdown"),
    ("answer.txt", LONG_PROGRAM, "python"),                             # a prose file holding code: guessed
    ("answer.txt", "Plain prose about the sea and the weather. " * 30, None),
    (None, LONG_PROGRAM, "python"),
])
def test_keyfile_check_picks_the_gate_from_the_file_name_or_the_text(key_path, filename, text, language) -> None:
    from aimark.verify.watermark import watermark_check_from_keyfile

    check = watermark_check_from_keyfile(str(key_path))
    report = verify(text.encode(), filename, "cn", watermark_check=check)
    assert report.layers["watermark"]["result"]["code_language"] == language
    detail = _watermark_requirement(report).detail
    assert (f"code gate: {language}" in detail) if language else ("code gate" not in detail)


def test_watermarked_program_is_found_through_the_gate(key_path, tiny) -> None:
    from aimark.engines import generate
    from aimark.keys import load_key
    from aimark.verify.watermark import watermark_check_from_keyfile

    key = load_key(key_path)
    (generation,) = generate(tiny, ["def solve(values):\n"], key=key, max_new_tokens=250, min_new_tokens=250, seed=2, chat=False,
                             repetition_penalty=1.0)
    report = verify(generation.text.encode(), "generated.py", "cn", watermark_check=watermark_check_from_keyfile(str(key_path)))
    result = report.layers["watermark"]["result"]
    assert result["code_language"] == "python" and result["watermarked"] is True
    assert "code gate: python" in _watermark_requirement(report).detail
