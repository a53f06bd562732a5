"""The public entries the bench times, each a ``Case -> answer`` callable, built once per run.

Library entries are called as the CLI calls them; the HTTP routes go through the ASGI app with a runtime
on a tiny model (as tests/service/conftest.py builds one), a detection API key and limits raised so that
every size reaches the work (the limits themselves are the service's business, not this bench's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.adversarial.generators import Case, _prose, json_body

TEXT_KINDS = frozenset({"txt", "md", "py", "json"})
ALL_KINDS = TEXT_KINDS | {"docx", "pdf"}
DETECT_KEY = "amk-bench-adversarial-detect-0123456789"


@dataclass(frozen=True)
class Entry:
    name: str
    kinds: frozenset[str]  # kinds of input (by extension) it takes
    call: Callable[[Case], object]


def tiny_model_dir(directory: Path) -> Path:
    """A BPE tokenizer trained on stdlib prose and a 2-layer Llama (seconds; nothing downloaded)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"])
    tokenizer.train_from_iterator(_prose().split("\n\n"), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    fast.save_pretrained(directory)
    torch.manual_seed(1234)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=fast.pad_token_id,
                         eos_token_id=fast.eos_token_id, bos_token_id=fast.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _bench_key(scheme: str = "synthid"):
    from aimark.keys import DEFAULT_PARAMS, WatermarkKey, _key_id_for

    secret = hashlib.sha256(f"aimark-bench-adversarial-{scheme}".encode()).digest()
    return WatermarkKey(_key_id_for(secret, scheme), scheme, dict(DEFAULT_PARAMS[scheme]), secret)


def build_entries(work: Path, *, quick: bool) -> tuple[list[Entry], Callable[[], None]]:
    """(entries, close) for a run: the tiny tokenizer in quick mode, the embedded Gemma's otherwise."""
    from aimark.detect import Detector
    from aimark.engines import load_model, load_tokenizer
    from aimark.labels import add_label, file_kind_for, remove_label
    from aimark.provenance import GenerationInfo, SigningCredentials, sign_content
    from aimark.provenance.test_pki import generate_test_pki
    from aimark.registry.fingerprint import fingerprint
    from aimark.schemes.code import detection_language
    from aimark.verify import verify
    from aimark.verify.watermark import detect_file_text

    tiny_dir = tiny_model_dir(work / "tiny-model")
    tiny = load_model(str(tiny_dir))
    key = _bench_key()
    tokenizer = tiny.tokenizer if quick else load_tokenizer(None)
    detector = Detector(key, tokenizer, check_tokenizer=False)
    pki = generate_test_pki()
    credentials = SigningCredentials.from_pem(pki.certificate_chain_pem, pki.private_key_pem)
    info = GenerationInfo(model_name="bench", watermark_scheme="synthid", watermark_key_id=key.key_id)

    def check(text: str, filename: str | None = None) -> dict:
        return detect_file_text(detector, text, filename).to_dict()

    entries = [
        Entry("detect", TEXT_KINDS, lambda case: detect_file_text(detector, case.text, case.filename).p_value),
        Entry("code-language guess", TEXT_KINDS, lambda case: detection_language(case.text)),
        Entry("fingerprint", TEXT_KINDS, lambda case: fingerprint(case.text).num_tokens),
        Entry("label", TEXT_KINDS, lambda case: len(add_label(case.content, file_kind_for(case.filename), "eu", "en"))),
        Entry("unlabel", TEXT_KINDS, lambda case: len(remove_label(case.content, file_kind_for(case.filename))[1])),
        Entry("sign", ALL_KINDS, lambda case: len(sign_content(case.content, case.filename, credentials, info))),
        Entry("verify", ALL_KINDS, lambda case: verify(case.content, case.filename, "all", trust_anchors=pki.trust_anchor_pem,
                                                       watermark_check=check).verdict),
    ]
    http, close = _http_entries(tiny, key, pki, credentials, work)
    return entries + http, close


def _http_entries(tiny, key, pki, credentials, work: Path) -> tuple[list[Entry], Callable[[], None]]:
    from fastapi.testclient import TestClient

    from aimark.registry import Registry
    from aimark.service.app import create_app
    from aimark.service.config import ServiceConfig, api_key_digest
    from aimark.service.runtime import ServiceRuntime

    wanted = dict(
        profile="all", language="en", labels=("notice", "c2pa"), credentials=credentials, trust_anchors=pki.trust_anchor_pem,
        api_key_digests=frozenset({api_key_digest("amk-bench-generation-0123456789")}),
        detect_api_key_digests=frozenset({api_key_digest(DETECT_KEY)}),
        # Raised so that 1 MB reaches the work; rate limits out of the way (each is the service's own test).
        max_text_chars=2_000_000, max_request_bytes=16 * 1024 * 1024, detect_key_chars_per_minute=1e12,
        detect_key_burst_chars=10**12, detect_workers=0, detect_deadline_s=600.0,
    )
    fields = {f.name for f in dataclasses.fields(ServiceConfig)}
    config = ServiceConfig(**{name: value for name, value in wanted.items() if name in fields})
    registry = Registry(f"sqlite:///{work / 'registry.sqlite3'}", retention_days=config.retention_days)
    runtime = ServiceRuntime(config, tiny, [key], registry)
    client = TestClient(create_app(runtime))
    client.__enter__()
    headers = {"Authorization": f"Bearer {DETECT_KEY}"}

    def post(route: str, case: Case) -> str:
        if case.filename.endswith(".json"):  # the body itself is the hostile document
            response = client.post(route, content=case.content, headers={**headers, "Content-Type": "application/json"})
        elif route == "/v1/detect":
            response = client.post(route, content=json_body(case.text), headers={**headers, "Content-Type": "application/json"},
                                   params={"filename": case.filename})
        else:
            response = client.post(route, content=case.content, params={"filename": case.filename},
                                   headers={**headers, "Content-Type": "application/octet-stream"})
        if response.status_code >= 500:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return f"HTTP {response.status_code}"

    def close() -> None:
        client.__exit__(None, None, None)
        runtime.close()

    return [Entry("HTTP /v1/detect", TEXT_KINDS, lambda case: post("/v1/detect", case)),
            Entry("HTTP /v1/verify", ALL_KINDS, lambda case: post("/v1/verify", case))], close


def temporary_work() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="aimark-adversarial-")
