from aimark.labels import add_label_text, file_kind_for
from aimark.registry import fingerprint, winnow
from aimark.registry.fingerprint import NGRAM, WINDOW, normalised_tokens

TEXT = ("The registry keeps a fingerprint of every output the service issues, so that a reader who pastes a copy "
        "back into the verification page learns when and by which model it was produced, even after light edits.")


def _shared(a: str, b: str) -> float:
    first, second = fingerprint(a).hashes, fingerprint(b).hashes
    return len(first & second) / len(first)


def test_labels_case_width_and_whitespace_do_not_change_the_content_hash():
    labelled = add_label_text(TEXT, file_kind_for("x.txt"), "all", "ko")
    variant = "  " + TEXT.upper().replace(" ", "\n  ") + "\u200b\ufeff"
    assert fingerprint(labelled).content_sha256 == fingerprint(TEXT).content_sha256
    assert fingerprint(variant).content_sha256 == fingerprint(TEXT).content_sha256
    assert fingerprint(TEXT + " extra").content_sha256 != fingerprint(TEXT).content_sha256


def test_a_small_edit_keeps_most_fingerprints_and_other_text_shares_none():
    edited = TEXT.replace("light edits", "a few small edits").replace("pastes", "copies")
    assert _shared(edited, TEXT) >= 0.5
    assert _shared("An unrelated sentence about the weather in Seoul, which was sunny and cold all week long.", TEXT) == 0


def test_winnowing_guarantee_any_shared_run_of_ngram_plus_window_tokens_shares_a_hash():
    tokens = normalised_tokens(TEXT)
    run = tokens[7 : 7 + NGRAM + WINDOW - 1]
    assert winnow(run) & winnow(tokens)


def test_cjk_characters_are_tokens_and_short_texts_get_one_hash():
    assert normalised_tokens("本内容由人工智能生成") == list("本内容由人工智能生成")
    assert len(fingerprint("짧은 글").hashes) == 1
    assert fingerprint("").hashes == frozenset() and fingerprint("").num_tokens == 0
