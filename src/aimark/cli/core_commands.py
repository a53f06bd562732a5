"""keygen, generate, detect, demo."""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path
from typing import Annotated, Optional

import typer

from aimark.cli.app import app
from aimark.cli.io import console, fail, guarded, model_status, read_text_input, token_progress
from aimark.keys import SCHEMES, Keyring, WatermarkKey

SCHEME_CHOICES = "synthid|kgw|gumbel"
# SynthID's tournament is distortion-free: watermarked programs are as correct as unwatermarked ones in expectation.
CODE_SCHEME = "synthid"


def _tokenizer_binding(model: Optional[str]):
    from aimark.detect.detector import tokenizer_binding
    from aimark.engines import canonical_model_ref, load_detection_tokenizer

    ref = canonical_model_ref(model)
    with model_status() as say:
        tokenizer = load_detection_tokenizer(ref, progress=say)
    return ref, tokenizer_binding(tokenizer, ref)


@app.command()
@guarded
def keygen(
    scheme: Annotated[str, typer.Option(help=f"Watermark scheme: {SCHEME_CHOICES}.")] = "synthid",
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to write (mode 0600).")] = Path("aimark-key.json"),
    model: Annotated[Optional[str], typer.Option(help="Model directory the key is for (default: the embedded Gemma 3 270M).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing key file.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the key's public description as JSON.")] = False,
    code: Annotated[bool, typer.Option("--code", help=(
        "A key for program code: its watermark survives formatters (black, ruff format, prettier): contexts and "
        "units are read without whitespace, quote style, trailing commas or parentheses. synthid and gumbel."))] = False,
) -> None:
    """Create a secret watermark key bound to a model's tokenizer."""
    from aimark.keys import generate_key, save_key

    if scheme not in SCHEMES:
        fail(f"unknown scheme {scheme!r}; choose {SCHEME_CHOICES}")
    if code and scheme == "kgw":
        fail("--code keys are synthid or gumbel keys (kgw's green lists are over token ids)")
    if out.exists() and not force:
        fail(f"{out} already exists; pass --force to overwrite it")
    model_ref, binding = _tokenizer_binding(model)
    key = generate_key(scheme, tokenizer=binding, model=model_ref, **({"units": "code-skeleton"} if code else {}))
    save_key(key, out, overwrite=force)
    if json_output:
        print(json.dumps({**key.public_dict(), "path": str(out)}, ensure_ascii=False))
    else:
        kind = " code" if code else ""
        console.print(f"wrote {scheme}{kind} key [bold]{key.key_id}[/] to {out} (mode 0600)")


def _load_keyring(paths: list[Path]) -> Keyring:
    if not paths:
        fail("give at least one --key KEYFILE")
    return Keyring.load(paths)


def _read_prompts(prompt: Optional[str], prompt_file: Optional[Path]) -> list[str]:
    if (prompt is None) == (prompt_file is None):
        fail("give exactly one of --prompt TEXT or --prompt-file FILE")
    if prompt is not None:
        if not prompt.strip():
            fail("the prompt is empty")
        return [prompt]
    text = read_text_input(str(prompt_file))
    # "\n" ends a prompt; str.splitlines() would also cut one at U+2028, U+0085 or a form feed inside it.
    prompts = [line.removesuffix("\r") for line in text.split("\n") if line.strip()]
    if not prompts:
        fail(f"{prompt_file} holds no prompts (one prompt per line)")
    return prompts


@app.command()
@guarded
def generate(
    key: Annotated[Optional[Path], typer.Option(help="Key file; its scheme watermarks the output.")] = None,
    scheme: Annotated[Optional[str], typer.Option(help="'none' generates without a watermark (a control).")] = None,
    prompt: Annotated[Optional[str], typer.Option(help="One prompt.")] = None,
    prompt_file: Annotated[Optional[Path], typer.Option(help="File with one prompt per line, generated as one batch.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=8192)] = 200,
    model: Annotated[Optional[str], typer.Option(help="Local Hugging Face model directory (default: the key's model, else the embedded one).")] = None,
    temperature: Annotated[float, typer.Option(min=0.01)] = 1.0,
    top_k: Annotated[int, typer.Option(min=1)] = 50,
    top_p: Annotated[float, typer.Option(min=0.01, max=1.0)] = 1.0,
    repetition_penalty: Annotated[Optional[float], typer.Option(min=1.0, help="Penalty on repeated tokens (1.0 = off; default 1.15, 1.0 with --code).")] = None,
    min_new_tokens: Annotated[int, typer.Option(min=0)] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed (not the watermark key).")] = None,
    raw: Annotated[bool, typer.Option(help="Use the prompt as is, without the model's chat turn format.")] = False,
    code: Annotated[bool, typer.Option("--code", help="The answer is a program: no repetition penalty; prints its language.")] = False,
    language: Annotated[Optional[str], typer.Option(help="With --code (implied): the program's language, e.g. python; default: guessed from the output.")] = None,
    comment_boost: Annotated[float, typer.Option(min=0.0, max=10.0, help=(
        "With --language and a synthid key: push the watermark harder inside line comments (nats per sd of the "
        "detector's statistic; 2 is measured in docs/code.md). More detectable code, no longer distortion-free. 0 = off."))] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per prompt, one per line.")] = False,
) -> None:
    """Generate text, watermarked with KEY (or unwatermarked with --scheme none)."""
    from aimark.engines import generate as run_generation
    from aimark.engines import load_model
    from aimark.engines.generation import default_repetition_penalty
    from aimark.keys import load_key
    from aimark.schemes.code import guess_language, normalise_language

    if scheme not in (None, "none"):
        fail("--scheme takes only 'none' here; the key file decides the watermark scheme")
    if (key is None) == (scheme is None):
        fail("give --key KEYFILE to watermark, or --scheme none for an unwatermarked control")
    code = code or language is not None
    language = normalise_language(language)
    if comment_boost and language is None:
        fail("--comment-boost needs --language: comments are found with the language's comment marker")
    if repetition_penalty is None:
        repetition_penalty = default_repetition_penalty(code=code)
    prompts = _read_prompts(prompt, prompt_file)
    watermark_key: WatermarkKey | None = load_key(key) if key is not None else None
    if code and watermark_key is not None and watermark_key.scheme != CODE_SCHEME:
        console.print(f"note: {CODE_SCHEME} is the recommended scheme for code (distortion-free, so programs stay as "
                      f"correct as unwatermarked ones); this key is {watermark_key.scheme}", highlight=False)
    model_ref = model or (watermark_key.model if watermark_key else None)
    with model_status() as say:
        loaded = load_model(model_ref, progress=say)
    if watermark_key is not None:
        from aimark.detect.detector import ensure_tokenizer_matches

        ensure_tokenizer_matches(watermark_key, loaded.tokenizer)  # a mismatch is a one-line error (guarded)
    with token_progress(len(prompts) * max_new_tokens, "generating") as advance:
        generations = run_generation(
            loaded,
            prompts,
            key=watermark_key,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            min_new_tokens=min_new_tokens,
            batch_size=batch_size,
            seed=seed,
            chat=not raw,
            on_tokens=advance,
            code_language=language,
            comment_boost=comment_boost,  # ignored without a key: nothing is watermarked
        )
    for generation in generations:
        document = {
            "prompt": generation.prompt,
            "text": generation.text,
            "num_tokens": generation.num_tokens,
            "finish_reason": generation.finish_reason,
            "scheme": generation.scheme,
            "key_id": generation.key_id,
            "model": loaded.name,
        }
        if code:  # what `aimark detect --language` should be given (None: not recognisable as code)
            document["language"] = language or guess_language(generation.text)
        if json_output:
            print(json.dumps(document, ensure_ascii=False))
        else:
            print(generation.text)
            if code:
                console.print(f"language: {document['language'] or 'unknown'}", highlight=False)
            if len(generations) > 1:
                print()


def _make_detector(keys: list[Path], model: Optional[str], alpha: float):
    from aimark.detect import Detector
    from aimark.engines import load_detection_tokenizer

    keyring = _load_keyring(keys)
    model_ref = keyring.tokenizer_model(model)
    with model_status() as say:
        tokenizer = load_detection_tokenizer(model_ref, progress=say)
    return Detector(keyring, tokenizer, alpha=alpha)


def _detect_with_model(detector, model: Optional[str], text: str, *, prompt, as_json: bool, **sampling) -> None:
    from aimark.detect import DetectionInputError
    from aimark.detect.with_model import Sampling
    from aimark.engines import ModelLoadError, load_model
    from aimark.engines.scoring import detect_with_model

    unsupported = sorted({scheme.name for scheme in detector.schemes if scheme.name not in ("synthid", "kgw")})
    if unsupported:
        fail(f"--with-model weights keyed bits: {', '.join(unsupported)} keys have none (synthid and kgw keys do); detect without it")
    try:
        with model_status() as say:
            loaded = load_model(Keyring(detector.keys).tokenizer_model(model), progress=say)
        result = detect_with_model(detector, loaded, text, prompt=prompt, sampling=Sampling(**sampling))
    except (ModelLoadError, DetectionInputError, ValueError) as exc:
        fail(str(exc))
    _render_result(result, as_json=as_json, tokens=False)


def _render_result(result, *, as_json: bool, tokens: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(include_tokens=tokens), ensure_ascii=False))
        return
    verdict = "[bold green]WATERMARKED[/]" if result.watermarked else "[bold]not watermarked[/]"
    console.print(
        f"{verdict}  p = {result.p_value:.3g}  (alpha {result.alpha:g}; "
        f"{result.num_scored_tokens} of {result.num_tokens} tokens scored; {result.scheme} key {result.key_id})",
        highlight=False,
    )
    if result.code_language:
        from aimark.schemes.code import describe_code_gate

        console.print(f"code gate: {result.code_language} ({describe_code_gate(result.scheme)})", highlight=False)


def _gate_option(language: Optional[str], prose: bool) -> Optional[str]:
    """--language / --prose as one value for detection_language (checked before any model loads)."""
    from aimark.schemes.code import NO_GATE, normalise_language

    if prose and language is not None:
        fail("give --language or --prose, not both")
    if prose:
        return "none"
    if language is not None and language.strip().lower() not in NO_GATE:
        normalise_language(language)  # an unsupported name is a one-line error now, not after loading the tokenizer
    return language


@app.command()
@guarded
def detect(
    source: Annotated[list[str], typer.Argument(help="Text file, or - for standard input; with --ray, JSONL/Parquet files or folders.")] = ["-"],  # noqa: B006
    key: Annotated[list[Path], typer.Option(help="Key file (repeat for a keyring).")] = [],  # noqa: B006
    alpha: Annotated[float, typer.Option(min=1e-300, max=0.5, help="Significance level = false-positive rate.")] = 1e-3,
    prompt: Annotated[Optional[str], typer.Option(help="Prompt the text answered; used as context, never scored.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Tokenizer source (default: the key's model).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object (see README).")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Input lines are JSON objects with a 'text' field; one result line each.")] = False,
    tokens: Annotated[bool, typer.Option("--tokens", help="Include per-token [start, end, score] in JSON.")] = False,
    spans: Annotated[bool, typer.Option("--spans", help="Find watermarked spans in a long mixed text (family-wise error <= alpha over all windows).")] = False,
    language: Annotated[Optional[str], typer.Option(help="Code gate: count only the tokens of this language whose lexical classes carry the key's watermark (python, js, ...; markdown: fenced blocks). Default: from the file's extension, else guessed from the text; 'none' = every token.")] = None,
    prose: Annotated[bool, typer.Option("--prose", help="No code gate: every token counts (= --language none).")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Detect a corpus (JSONL/Parquet) on Ray; verdict rows go to --output as Parquet.")] = False,
    output: Annotated[Optional[Path], typer.Option(help="With --ray: the output, a directory of Parquet parts; a rerun over it resumes.")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="With --ray: the Ray cluster ('auto' or host:port); default: a local one.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="With --ray: detection workers, one CPU each (default: every CPU).")] = None,
    text_column: Annotated[str, typer.Option(help="With --ray: the JSON field / Parquet column holding the text.")] = "text",
    id_column: Annotated[str, typer.Option(help="With --ray: the field / column holding each row's id (copied to the output).")] = "id",
    with_model: Annotated[bool, typer.Option("--with-model", help=(
        "The provider's detector: load the generating model (--model, default the key's) and weight each keyed bit by "
        "how much a watermarked draw from the model's sampling distribution lifts it (stronger on code; exact p-values). "
        "synthid and kgw keys; give the sampling the text was generated with."))] = False,
    temperature: Annotated[float, typer.Option(min=0.01, help="With --with-model: the generation's temperature.")] = 1.0,
    top_k: Annotated[int, typer.Option(min=1, help="With --with-model: the generation's top-k.")] = 50,
    top_p: Annotated[float, typer.Option(min=0.01, max=1.0, help="With --with-model: the generation's top-p.")] = 1.0,
) -> None:
    """Detect the watermark in text, from the text and the key alone (or, --with-model, with the generating model)."""
    from aimark.schemes.code import detection_language

    if spans and (jsonl or tokens):
        fail("--spans takes one text and prints spans, not --jsonl or --tokens")
    language = _gate_option(language, prose)
    if ray or output is not None:
        from aimark.cli.corpus import detect_on_ray

        if not ray or jsonl or tokens or json_output or prompt is not None:
            fail("--output goes with --ray, which reads JSONL/Parquet itself (no --jsonl, --tokens, --json or --prompt)")
        corpus_language = detection_language("", language=language) if language else None
        detect_on_ray(source, output, key=key, model=model, alpha=alpha, spans=spans, language=corpus_language,
                      ray_address=ray_address, workers=workers, text_column=text_column, id_column=id_column)
        return
    if len(source) != 1:
        fail("give one input (several need --ray)")
    source = source[0]
    if with_model and (jsonl or spans or tokens):
        fail("--with-model scores one text (not --jsonl, --spans or --tokens)")
    detector = _make_detector(key, model, alpha)
    if with_model:
        _detect_with_model(detector, model, read_text_input(source), prompt=prompt, as_json=json_output,
                           temperature=temperature, top_k=top_k, top_p=top_p)
        return
    if jsonl:  # one gate for the whole stream: the one given (lines are not guessed one by one)
        _detect_jsonl(detector, source, detection_language("", language=language) if language else None)
        return
    text = read_text_input(source)
    language = detection_language(text, language=language, filename=None if source == "-" else source)
    if spans:
        from aimark.detect.spans import detect_spans

        found = detect_spans(detector, text, prompt=prompt, language=language)
        if json_output:
            print(json.dumps(found.to_dict(), ensure_ascii=False))
            return
        _render_result(found, as_json=False, tokens=False)
        for span in found.spans:
            snippet = text[span.start : span.end].replace("\n", " ")
            console.print(f"  span chars {span.start}-{span.end}  p = {span.p_value:.3g}  {snippet[:60]!r}", highlight=False)
        return
    result = detector.detect(text, prompt=prompt, language=language)
    _render_result(result, as_json=json_output, tokens=tokens)


def _detect_jsonl(detector, source: str, language: Optional[str] = None) -> None:
    """Stream: bounded memory, output order = input order, bad lines reported in place."""
    from aimark.scale.rows import parse_jsonl_line  # the rows `detect --ray` reads too

    stream = sys.stdin.buffer if source == "-" else _open_binary(source)
    failures = 0
    lines = iter(stream)
    line_number = 0
    while chunk := list(islice(lines, 256)):
        texts: list[Optional[str]] = []
        errors: list[Optional[str]] = []
        for raw_line in chunk:
            line_number += 1
            text, _, error = parse_jsonl_line(raw_line, line_number)
            texts.append(text)
            errors.append(error)
        # One tokenizer call and one scoring pass per chunk, as `detect --ray` batches (detect_many defaults to 64).
        results = iter(detector.detect_many([t for t in texts if t is not None], batch_size=len(chunk), language=language))
        for text, error in zip(texts, errors):
            outcome = next(results) if text is not None else None
            if isinstance(outcome, Exception):
                error = str(outcome)
            if error is not None:
                failures += 1
                print(json.dumps({"error": error}, ensure_ascii=False), flush=False)
            else:
                print(json.dumps(outcome.to_dict(), ensure_ascii=False), flush=False)
        sys.stdout.flush()
    if failures:
        raise typer.Exit(2)


def _open_binary(path: str):
    try:
        return open(path, "rb")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


DEMO_PROMPTS = [
    ("ko", "인공지능이 우리 일상생활을 어떻게 바꾸고 있는지 설명하는 짧은 글을 써 주세요."),
    ("ja", "日本の四季の魅力について、短い文章を書いてください。"),
    ("zh", "请写一篇短文，介绍中国茶文化的历史。"),
    ("en", "Write a short essay about how bicycles changed city life."),
    ("code", "Write a Python function that returns the n-th Fibonacci number, with a docstring."),
]


@app.command()
@guarded
def demo(
    scheme: Annotated[str, typer.Option(help=f"Scheme to demonstrate: {SCHEME_CHOICES}.")] = "synthid",
    max_new_tokens: Annotated[int, typer.Option(min=16, max=2048)] = 200,
    model: Annotated[Optional[str], typer.Option(help="Local Hugging Face model directory (default: embedded).")] = None,
    alpha: Annotated[float, typer.Option(min=1e-300, max=0.5)] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Watermark ko/ja/zh/en/code generations with a fresh key, detect them and unwatermarked controls."""
    from rich.table import Table

    from aimark.detect import Detector
    from aimark.detect.detector import tokenizer_binding
    from aimark.engines import generate as run_generation
    from aimark.engines import load_model
    from aimark.keys import generate_key

    if scheme not in SCHEMES:
        fail(f"unknown scheme {scheme!r}; choose {SCHEME_CHOICES}")
    with model_status() as say:
        loaded = load_model(model, progress=say)
    key = generate_key(scheme, tokenizer=tokenizer_binding(loaded.tokenizer, loaded.name), model=loaded.name)
    prompts = [p for _, p in DEMO_PROMPTS]
    with token_progress(2 * len(prompts) * max_new_tokens, "generating watermarked and control text") as advance:
        marked = run_generation(loaded, prompts, key=key, max_new_tokens=max_new_tokens, seed=seed, on_tokens=advance)
        control = run_generation(loaded, prompts, key=None, max_new_tokens=max_new_tokens, seed=seed + 1, on_tokens=advance)
    detector = Detector(key, loaded.tokenizer, alpha=alpha)
    rows = []
    for (language, _), watermarked, plain in zip(DEMO_PROMPTS, marked, control):
        for kind, generation in (("watermarked", watermarked), ("control", plain)):
            try:
                result = detector.detect(generation.text)
                rows.append((language, kind, generation, result, None))
            except ValueError as exc:
                rows.append((language, kind, generation, None, str(exc)))
    if json_output:
        print(
            json.dumps(
                {
                    "key": key.public_dict(),
                    "results": [
                        {
                            "language": language,
                            "kind": kind,
                            "text": generation.text,
                            "detection": result.to_dict() if result else None,
                            "error": error,
                        }
                        for language, kind, generation, result, error in rows
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    table = Table(title=f"aimark demo: {scheme} watermark (key {key.key_id}), alpha = {alpha:g}")
    # One line per output: the fixed columns take about 58 characters, the text preview the rest.
    for column in ("lang", "kind", "scored", "p-value", "verdict"):
        table.add_column(column, no_wrap=True)
    table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=max(10, console.width - 58))
    correct = 0
    for language, kind, generation, result, error in rows:
        expected = kind == "watermarked"
        ok = result is not None and result.watermarked == expected
        correct += ok
        verdict = error or ("detected" if result.watermarked else "not detected")
        style = "green" if ok else "red"
        snippet = " ".join(generation.text.split())[:200]
        table.add_row(
            language,
            "marked" if expected else "control",
            f"{result.num_scored_tokens}/{result.num_tokens}" if result else f"-/{generation.num_tokens}",
            f"{result.p_value:.1e}" if result else "-",
            f"[{style}]{verdict}[/]",
            snippet,
        )
    console.print(table)
    console.print(f"{correct}/{len(rows)} verdicts as expected (watermarked detected, controls not).")
    if correct != len(rows):
        raise typer.Exit(1)
