import gzip
import hashlib
import logging
import os
import zipfile

import numpy as np
import pytest

from tflm.data import (
    Batching,
    ParallelDataError,
    find_dataset,
    num_batches,
    read_parallel,
    tokenize_pairs,
    translation_dataset,
)
from tflm.data import registry
from tflm.text import BOS_ID, EOS_ID, PAD_ID


def write(path, lines, binary=False):
    mode = "wb" if binary else "w"
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, mode) as f:
        for line in lines:
            f.write(line + (b"\n" if binary else "\n"))
    return str(path)


def test_mismatched_files_name_both_files_and_counts(tmp_path):
    source = write(tmp_path / "a.en", ["one", "two", "three"])
    target = write(tmp_path / "a.es", ["uno", "dos"])
    with pytest.raises(ParallelDataError) as error:
        read_parallel(source, target)
    message = str(error.value)
    assert source in message and target in message
    assert "has 3 lines" in message and "has 2" in message


def test_empty_and_non_utf8_lines_are_dropped_and_reported(tmp_path, caplog):
    source = write(tmp_path / "b.en.gz", [b"good", b"\xff\xfe bad", b"", b"fine  text ", b"x"], binary=True)
    target = write(tmp_path / "b.es", [b"bueno", b"malo", b"vacio", b"bien", b"\xc3"], binary=True)
    with caplog.at_level(logging.WARNING, logger="tflm"):
        corpus = read_parallel(source, target)
    assert corpus.source == ["good", "fine text"]
    assert corpus.target == ["bueno", "bien"]
    assert corpus.line_numbers == [1, 4]
    assert corpus.dropped.counts == {f"not UTF-8 in {source}": 1, "empty": 1, f"not UTF-8 in {target}": 1}
    assert "line 2" in caplog.text and "line 3" in caplog.text and "line 5" in caplog.text


def test_overlong_pairs_are_filtered_or_truncated_and_counted(sample_corpus, sample_tokenizer, caplog):
    corpus = sample_corpus.head(200)
    with caplog.at_level(logging.WARNING, logger="tflm"):
        filtered = tokenize_pairs(corpus, sample_tokenizer, sample_tokenizer, max_source_length=6,
                                  max_target_length=6)
    lengths = np.maximum(filtered.source.row_lengths(), filtered.target.row_lengths())
    assert len(filtered) < len(corpus) and lengths.max() <= 5
    assert "longer than 6 tokens" in caplog.text and "dropped" in caplog.text
    truncated = tokenize_pairs(corpus, sample_tokenizer, sample_tokenizer, max_source_length=6,
                               max_target_length=6, overlong="truncate")
    assert len(truncated) == len(corpus)
    assert truncated.source.row_lengths().numpy().max() == 5


@pytest.mark.parametrize("batching", [Batching(batch_tokens=300), Batching(batch_size=16)])
def test_batches_are_bucketed_padded_and_complete(sample_corpus, sample_tokenizer, batching):
    pairs = tokenize_pairs(sample_corpus.head(500), sample_tokenizer, sample_tokenizer, 40, 40)
    batches = list(translation_dataset(pairs, batching, seed=3, epoch=0))
    assert len(batches) == num_batches(pairs, batching)
    assert sum(b[1].shape[0] for b in batches) == len(pairs)
    seen_targets = 0
    for inputs, labels in batches:
        source, target_in = inputs["source_ids"].numpy(), inputs["target_ids"].numpy()
        labels = labels.numpy()
        assert (target_in[:, 0] == BOS_ID).all()
        # labels are the decoder inputs shifted by one, ending with EOS
        pieces = (labels[:, :-1] != PAD_ID) & (labels[:, :-1] != EOS_ID)
        np.testing.assert_array_equal(target_in[:, 1:][pieces], labels[:, :-1][pieces])
        assert ((labels == EOS_ID).sum(axis=1) == 1).all()
        assert ((source == EOS_ID).sum(axis=1) == 1).all()
        if batching.batch_tokens:
            assert max(source.shape[1], labels.shape[1]) * labels.shape[0] <= batching.batch_tokens * 1.25
        seen_targets += int((labels != PAD_ID).sum())
    assert seen_targets == pairs.num_target_tokens()


def test_order_depends_only_on_seed_and_epoch(sample_corpus, sample_tokenizer):
    pairs = tokenize_pairs(sample_corpus.head(300), sample_tokenizer, sample_tokenizer, 40, 40)
    first = [b[1].numpy().tolist() for b in translation_dataset(pairs, Batching(batch_size=8), seed=1, epoch=2)]
    again = [b[1].numpy().tolist() for b in translation_dataset(pairs, Batching(batch_size=8), seed=1, epoch=2)]
    other = [b[1].numpy().tolist() for b in translation_dataset(pairs, Batching(batch_size=8), seed=1, epoch=3)]
    assert first == again and first != other


def test_find_dataset_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TFLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TFLM_DATA_DIR", raising=False)
    # the shipped sample is always found
    assert find_dataset("tatoeba-es-en-sample").endswith("tatoeba-es-en-sample")
    # a data dir holding <name>/ wins, and so does $TFLM_DATA_DIR
    local = tmp_path / "corpora" / "ding-de-en"
    local.mkdir(parents=True)
    write(local / "train.de", ["Hallo."])
    write(local / "train.en", ["Hello."])
    assert find_dataset("ding-de-en", str(tmp_path / "corpora")) == str(local)
    assert find_dataset("ding-de-en", str(local)) == str(local)
    monkeypatch.setenv("TFLM_DATA_DIR", str(tmp_path / "corpora"))
    assert find_dataset("ding-de-en") == str(local)
    # a corpus without a download gives a message that says where it looked and what to do
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        find_dataset("sms-spam", str(tmp_path / "nowhere"))
    with pytest.raises(KeyError, match="Known datasets"):
        find_dataset("no-such-corpus")


def test_download_checks_sha256_and_prepares_layout(tmp_path, monkeypatch):
    """The download path, offline: a file:// URL to a WikiText-like archive built here."""
    archive = tmp_path / "wikitext-2-raw-v1.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for split in ("train", "valid", "test"):
            z.writestr(f"wikitext-2-raw/wiki.{split}.raw", f" = {split} = \n text of {split} \n")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    info = registry.REGISTRY["wikitext-2-raw"]
    good = registry.Download(url=archive.as_uri(), sha256=digest, filename="wikitext-2-raw-v1.zip")
    monkeypatch.setitem(registry.REGISTRY, "wikitext-2-raw", registry.dataclasses.replace(info, downloads=(good,)))
    monkeypatch.setenv("TFLM_CACHE_DIR", str(tmp_path / "cache"))
    directory = find_dataset("wikitext-2-raw")
    assert open(os.path.join(directory, "valid.txt")).read() == " = valid = \n text of valid \n"
    bad = registry.Download(url=archive.as_uri(), sha256="0" * 64, filename="wikitext-2-raw-v1.zip")
    monkeypatch.setitem(registry.REGISTRY, "wikitext-2-raw", registry.dataclasses.replace(info, downloads=(bad,)))
    with pytest.raises(ValueError, match="sha256"):
        registry.download_dataset("wikitext-2-raw", str(tmp_path / "other"))


def test_tatoeba_converter_follows_the_documented_split(tmp_path):
    archive = tmp_path / "spa-eng.zip"
    lines = ["Go.\tVe.", "Go.\tVete.", "Hi.\tHola.", "Run!\t¡Corre!", "Go.\tVe."]
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("spa-eng/spa.txt", "\n".join(lines) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    registry.PREPARERS["tatoeba_spa_eng"]([str(archive)], str(out))
    pairs = {}
    for split in ("train", "valid", "test"):
        en = open(out / f"{split}.en").read().splitlines()
        es = open(out / f"{split}.es").read().splitlines()
        for e, s in zip(en, es):
            pairs[(e, s)] = split
    assert len(pairs) == 4  # the duplicate pair is dropped
    assert pairs[("Go.", "Ve.")] == pairs[("Go.", "Vete.")]  # one component, one split


def test_tatoeba_split_rule_on_keys_of_known_buckets(tmp_path):
    """The documented rule: md5 of a component's smallest key ("a:" + English) mod 50 is 0 for test, 1 for
    valid, else train; a Spanish sentence shared with another English one joins that component. The keys
    were chosen for their buckets (82 -> 0, 54 -> 1, 142 -> 7), checked here."""
    test, valid, train = "Sentence number 82.", "Sentence number 54.", "Sentence number 142."
    assert [int(hashlib.md5(("a:" + s).encode()).hexdigest(), 16) % 50 for s in (test, valid, train)] == [0, 1, 7]
    lines = [f"{test}\tUno.", f"{valid}\tDos.", f"{train}\tTres.", "Zzz other.\tUno."]  # shares "Uno." with test
    archive = tmp_path / "spa-eng.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("spa-eng/spa.txt", "\n".join(lines) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    registry.PREPARERS["tatoeba_spa_eng"]([str(archive)], str(out))
    found = {split: open(out / f"{split}.en").read().splitlines() for split in ("train", "valid", "test")}
    assert found == {"test": [test, "Zzz other."], "valid": [valid], "train": [train]}


def test_shipped_sample_matches_its_checksums():
    info = registry.dataset_info("tatoeba-es-en-sample")
    assert registry.verify_files(info, find_dataset("tatoeba-es-en-sample")) == []


def test_multi30k_converter_takes_each_split_from_its_archive_names(tmp_path):
    """Multi30k's archives hold train.{de,en}, val.{de,en} and test_2016_flickr as test2016.{de,en}; the
    converter writes them as train/valid/test, byte for byte."""
    import io
    import tarfile

    texts = {"train": ("Ein Hund.\nZwei Katzen.\n", "A dog.\nTwo cats.\n"), "val": ("Hallo.\n", "Hello.\n"),
             "test2016": ("Ein Ball.\n", "A ball.\n")}
    archives = []
    for index, (prefix, (de, en)) in enumerate(texts.items()):
        path = tmp_path / f"archive{index}.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            for lang, text in (("de", de), ("en", en)):
                data = text.encode()
                member = tarfile.TarInfo(f"data/{prefix}.{lang}")
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
        archives.append(str(path))
    out = tmp_path / "out"
    out.mkdir()
    registry.PREPARERS["multi30k"](archives, str(out))
    for split, prefix in (("train", "train"), ("valid", "val"), ("test", "test2016")):
        assert (out / f"{split}.de").read_text() == texts[prefix][0]
        assert (out / f"{split}.en").read_text() == texts[prefix][1]
