"""Corpus detection on a real local Ray cluster: row-for-row agreement with `detect --jsonl`, error rows, resume."""

from __future__ import annotations

import json

import pytest

from tests.helpers import require_module

ray = require_module("ray", "pip install 'aimark[scale]'")
pa = require_module("pyarrow", "pip install 'aimark[scale]'")
import pyarrow.parquet as pq  # noqa: E402

from aimark.detect import Detector, detect_spans  # noqa: E402
from aimark.engines import generate  # noqa: E402
from aimark.keys import Keyring  # noqa: E402
from aimark.scale import CorpusOutputError, detect_corpus  # noqa: E402
from aimark.scale.corpus import CorpusSettings, Part, _jsonl_parts, build_detector, run_part  # noqa: E402
from aimark.scale.rows import MAX_ROW_BYTES, verdict_schema  # noqa: E402
from tests.cli.conftest import run  # noqa: E402

VERDICT = [field.name for field in verdict_schema()][4:]  # the fields `detect --json` prints


@pytest.fixture(scope="session")
def ray_cluster():
    """One local cluster for the session: two CPUs, no dashboard, a small object store."""
    import ray.data  # noqa: F401 - its log handlers bind to sys.stderr now, not to a CliRunner's stream that closes

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def key_files(tmp_path_factory, tiny_model_dir):
    directory = tmp_path_factory.mktemp("corpus-keys")
    paths = []
    for scheme in ("synthid", "kgw"):
        path = directory / f"{scheme}.json"
        result = run("keygen", "--scheme", scheme, "--out", path, "--model", tiny_model_dir)
        assert result.exit_code == 0, result.output
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def corpus_lines(tiny, key_files, human_passages) -> list[bytes]:
    """Watermarked rows (each key), human rows and every kind of bad row, interleaved."""
    keyring = list(Keyring.load(key_files))
    marked = [g.text for key in keyring for g in generate(tiny, ["The history of the", "日本国民は"], key=key, max_new_tokens=120, min_new_tokens=120, chat=False, seed=3)]
    lines = []
    for index, text in enumerate(marked + human_passages[:10]):
        lines.append(json.dumps({"id": f"doc-{index}", "text": text}, ensure_ascii=False).encode())
    bad = [
        b'{"id": "bad-utf8", "text": "caf\xc3\x28 latte"}',
        b'{"id": 7, "body": "no text field"}',
        b'{"id": "empty", "text": "   "}',
        b'{"id": "short", "text": "ok"}',
        b"not json at all",
        b'{"text": null}',
        b"[" * 100_000,
        b'{"id": "huge", "text": "' + b"a" * MAX_ROW_BYTES + b'"}',
        b"",
    ]
    mixed = []
    for index, line in enumerate(lines):
        mixed.append(line)
        if index < len(bad):
            mixed.append(bad[index])
    return mixed


def _jsonl_verdicts(path, key_files) -> list[dict]:
    result = run("detect", path, "--jsonl", *[arg for key in key_files for arg in ("--key", key)])
    assert result.exit_code == 2, result.output  # some rows are bad
    return [json.loads(line) for line in result.stdout.splitlines()]


def _rows(output) -> list[dict]:
    return sorted(pq.read_table(output).to_pylist(), key=lambda row: (row["source"], row["row"]))


def _same_verdicts(parquet_rows: list[dict], jsonl_rows: list[dict]) -> None:
    assert len(parquet_rows) == len(jsonl_rows)
    for index, (ours, theirs) in enumerate(zip(parquet_rows, jsonl_rows)):
        assert ours["row"] == index
        if "error" in theirs:
            assert ours["error"] == theirs["error"] and ours["p_value"] is None
        else:
            assert ours["error"] is None
            assert {name: ours[name] for name in VERDICT} == theirs


def test_ray_cli_matches_detect_jsonl_row_for_row(ray_cluster, corpus_lines, key_files, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"\n".join(corpus_lines))  # the last line has no newline
    # The same rows again as Parquet, under other column names, with a null text and an integer id.
    texts = [json.loads(line)["text"] for line in corpus_lines[:12] if line.startswith(b'{"id": "doc')]
    table = pa.table({"body": texts + [None], "ident": list(range(len(texts))) + [99]})
    parquet = tmp_path / "corpus.parquet"
    pq.write_table(table, parquet, row_group_size=2)
    keys = [arg for key in key_files for arg in ("--key", key)]

    result = run("detect", "--ray", corpus, "--output", tmp_path / "out.parquet", *keys)
    assert result.exit_code == 2, result.output  # exit 2: some rows are error rows, as with --jsonl
    rows = _rows(tmp_path / "out.parquet")
    expected = _jsonl_verdicts(corpus, key_files)
    _same_verdicts(rows, expected)
    assert sum(row["watermarked"] is True for row in rows) == 4  # every generation, with its own key
    assert {row["key_id"] for row in rows if row["watermarked"]} == {k.key_id for k in Keyring.load(key_files)}
    errors = [row["error"] for row in rows if row["error"]]
    for message in ("not valid UTF-8", "longer than 4 MiB", "nested too deeply", "a string 'text' field", "empty", "nothing to score"):
        assert any(message in error for error in errors), message
    assert {row["id"]: row for row in rows}["7"]["error"].endswith("a string 'text' field")  # ids of bad rows kept where readable

    parquet_run = run("detect", "--ray", parquet, "--output", tmp_path / "from-parquet", "--text-column", "body", "--id-column", "ident", *keys)
    assert parquet_run.exit_code == 2, parquet_run.output
    from_parquet = _rows(tmp_path / "from-parquet")
    assert [row["id"] for row in from_parquet] == [str(i) for i in range(len(texts))] + ["99"]
    assert from_parquet[-1]["error"] == f"row {len(texts) + 1}: expected a string 'body' column, got null"
    jsonl_by_text = {json.loads(line)["text"]: verdict for line, verdict in zip(corpus_lines, expected) if line.startswith(b'{"id": "doc')}
    for row, text in zip(from_parquet, texts):
        assert {name: row[name] for name in VERDICT} == jsonl_by_text[text]


def test_spans_and_resume_after_a_partial_run(ray_cluster, corpus_lines, key_files, tiny, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"\n".join(corpus_lines) + b"\n")
    output = tmp_path / "spans.parquet"
    first = detect_corpus([corpus], output, key_paths=key_files, spans=True, rows_per_part=5, workers=1)
    assert first.parts == -(-len(corpus_lines) // 5) and first.parts_done_before == 0 and first.rows == len(corpus_lines)
    complete = _rows(output)
    detector = Detector(Keyring.load(key_files), tiny.tokenizer)
    for row, line in zip(complete, corpus_lines):
        if row["error"] is None:
            expected = detect_spans(detector, json.loads(line)["text"]).to_dict()
            assert {name: row[name] for name in expected} == expected
    assert any(row["spans"] for row in complete)

    # A run that stopped part-way: two parts missing, and a temporary file a crashed worker left behind.
    parts = sorted(output.glob("part-*.parquet"))
    for part in parts[1:3]:
        part.unlink()
    (output / f".{parts[1].name}.dead.tmp").write_bytes(b"PAR1 half a part")
    second = detect_corpus([corpus], output, key_paths=key_files, spans=True, rows_per_part=5, workers=1)
    assert (second.parts, second.parts_done_before) == (first.parts, first.parts - 2)
    assert second.rows == 10
    assert _rows(output) == complete
    assert not list(output.glob(".*.tmp"))

    # Nothing left to do: no cluster work at all; another keyring over the same output is refused.
    assert detect_corpus([corpus], output, key_paths=key_files, spans=True, rows_per_part=5).rows == 0
    with pytest.raises(CorpusOutputError, match="key_ids"):
        detect_corpus([corpus], output, key_paths=key_files[:1], spans=True, rows_per_part=5)


def test_a_part_that_fails_leaves_no_file(key_files, tmp_path, monkeypatch):
    """No Ray: run_part alone, made to crash after its first batch was written."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"words {i} " * 40}) + "\n" for i in range(6)))
    settings = CorpusSettings(output=str(tmp_path), key_paths=tuple(map(str, key_files)), batch_size=2)
    detector = build_detector(settings)
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("worker died")
        return real(*args, **kwargs)

    import aimark.scale.corpus as corpus_module

    real = corpus_module.detect_rows
    monkeypatch.setattr(corpus_module, "detect_rows", crashing)
    part = _jsonl_parts(0, corpus, 100)[0]
    with pytest.raises(MemoryError):
        run_part(detector, part, settings)
    assert list(tmp_path.glob("part-*")) == [] and list(tmp_path.glob(".*")) == []


@pytest.mark.parametrize("content", [b"", b"a\n", b"a\nb", b"a\nb\n", b"\n\n\n", b"a\nb\nc\nd\n", b"a\nb\nc\nd"])
def test_jsonl_parts_count_lines_as_iteration_does(tmp_path, content):
    path = tmp_path / "lines.jsonl"
    path.write_bytes(content)
    lines = path.read_bytes().splitlines(keepends=True)
    for rows_per_part in (1, 2, 3, 100):
        parts = _jsonl_parts(0, path, rows_per_part)
        assert sum(p.end_row - p.first_row for p in parts) == len(lines)
        for part in parts:
            assert path.read_bytes()[part.start_byte : part.end_byte] == b"".join(lines[part.first_row : part.end_row])
            assert 0 < part.end_row - part.first_row <= rows_per_part
            assert Part.from_json(part.to_json()) == part


def test_a_row_the_detector_chokes_on_is_an_error_row_and_its_batch_keeps_its_verdicts(key_files, tmp_path, monkeypatch):
    """No Ray: a batch whose detect_many raises is detected row by row; the failing row alone becomes an error."""
    import pyarrow.parquet as pq

    corpus = tmp_path / "corpus.jsonl"
    texts = [" ".join(f"word{i}{j}" for j in range(60)) for i in range(4)]
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    output = tmp_path / "out"
    output.mkdir()
    settings = CorpusSettings(output=str(output), key_paths=tuple(map(str, key_files)))
    detector = build_detector(settings)
    expected = [detector.detect(t, with_tokens=False) for t in texts]
    real_detect = Detector.detect

    def detect_many(self, *args, **kwargs):
        raise RuntimeError("a bug the batch path hits")

    def detect(self, text, **kwargs):
        if text == texts[2]:
            raise ZeroDivisionError("a bug this text hits")
        return real_detect(self, text, **kwargs)

    monkeypatch.setattr(Detector, "detect_many", detect_many)
    monkeypatch.setattr(Detector, "detect", detect)
    summary = run_part(detector, _jsonl_parts(0, corpus, 100)[0], settings)
    assert (summary["rows"], summary["errors"]) == (4, 1)
    rows = pq.read_table(output).to_pylist()
    assert rows[2]["error"] == "internal error (ZeroDivisionError)" and rows[2]["id"] == "2"
    for index in (0, 1, 3):
        assert rows[index]["error"] is None and rows[index]["p_value"] == expected[index].p_value


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--output", "out.parquet"], "--output goes with --ray"),
        (["--ray"], "--ray needs --output"),
        (["--ray", "--output", "out.parquet", "--jsonl"], "no --jsonl"),
    ],
)
def test_ray_cli_usage_errors_are_one_line(key_files, tmp_path, extra, message):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "some words"}\n')
    result = run("detect", corpus, "--key", key_files[0], *extra)
    assert result.exit_code == 2 and message in result.output


def test_two_inputs_without_ray_are_refused(key_files, tmp_path):
    result = run("detect", tmp_path / "a.txt", tmp_path / "b.txt", "--key", key_files[0])
    assert result.exit_code == 2 and "several need --ray" in result.output


def test_detect_still_reads_standard_input_when_no_input_is_named(key_files, human_passages):
    result = run("detect", "--key", key_files[0], "--json", input=human_passages[0])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["watermarked"] is False
