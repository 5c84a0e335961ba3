"""Punctuation and capitalisation restoration: a tagging corpus derived from any text, deterministically.

The input is the text as a speech recogniser gives it (lower case, no punctuation); each word's label says how
to write it back. Words are the whitespace-separated tokens of a line; for each token:

- its punctuation is the trailing run of characters from `,.?!:;` (the whole run: "?!", "...", ".,");
- its word is the token without that run, lower-cased (`str.lower`);
- its case is "" (no upper-case letter), "C" (Capitalised: the first cased letter upper, every other letter
  lower; a single upper-case letter, "I", "A", "3D", is "C") or "U" (UPPER: two or more letters, all upper);
- its label is case + punctuation ("C", "U", ",", ".", "C.", "U?", "?!"), or "O" when both are empty.

`restore` applies a label: "C" upper-cases the word's first cased letter, "U" the whole word, and the
punctuation is appended; words are joined by single spaces. A line is kept only when `restore` rebuilds it
exactly (whitespace collapsed); `derive` returns None otherwise, so the corpus drops:

- mixed case ("iPhone", "McDonald", "TVs"), and letters whose case does not round-trip ("ß" -> "SS");
- a token that is only punctuation (" , " or " - ?"): its punctuation would have to attach to the word before,
  which `restore` would write without the space, so the text would change;
- lines without any word.

Other characters stay in the word: quotes, brackets and hyphens (`"hello` -> word `"hello`, label "C"), and
punctuation followed by a closing quote (`fine,"` -> word `fine,"`, label "O").

`prepare_punctuation_corpus` writes such a corpus from a registered one (a translation corpus's one side, or a
language-modelling corpus), keeping its split.
"""

import collections
import json
import os
import re

from tflm.data.registry import SPLITS, dataset_info, find_dataset, split_file
from tflm.data.tagging import TaggingData, write_conll

PUNCTUATION = ",.?!:;"
CASES = ("", "C", "U")
OUTSIDE = "O"
_WIKITEXT_HEADER = re.compile(r"^ ?(= )+.*( =)+ ?$")  # " = Title = ", " = = Section = = "


def _capitalise(word):
    for position, character in enumerate(word):
        if character.upper() != character:  # the first cased (lower-case) letter
            return word[:position] + character.upper() + word[position + 1:]
    return word


def _apply_case(word, case):
    if case == "C":
        return _capitalise(word)
    if case == "U":
        return word.upper()
    return word


def punctuation_case_families(label):
    """Splits a label into its case and its punctuation (for per-family scores).

    Args:
        label: str, "O" or case + punctuation ("C", "U?", ",", "C...").
    Returns:
        `(case, punctuation)`: case "", "C" or "U"; punctuation "" or a run of `,.?!:;`. "O" gives ("", "").
    Raises:
        ValueError: for a label that is not of this form.
    """
    if label == OUTSIDE:
        return "", ""
    case = label[:1] if label[:1] in ("C", "U") else ""
    punctuation = label[len(case):]
    if not label or any(character not in PUNCTUATION for character in punctuation):
        raise ValueError(f"label {label!r} is not a punctuation/case label; those are 'O' or an optional case "
                         f"(C or U) followed by characters of {PUNCTUATION!r} (e.g. 'C', ',', 'U?').")
    return case, punctuation


def _label(case, punctuation):
    return case + punctuation or OUTSIDE


def derive(line):
    """A line's words and labels, or None when they cannot rebuild it exactly.

    Args:
        line: str, one sentence or paragraph.
    Returns:
        `(words, labels)`, two lists of str of the same length (see the module docstring), or None for a line
        that `restore` could not rebuild (mixed case, a punctuation-only token, no words).
    Example:
    >>> derive("Hello, NASA! Is iOS here?")  # "iOS" is mixed case
    >>> derive("Hello, NASA... I'm here?!")
    (['hello', 'nasa', "i'm", 'here'], ['C,', 'U...', 'C', '?!'])
    """
    words, labels = [], []
    for token in line.split():
        word = token.rstrip(PUNCTUATION)
        punctuation = token[len(word):]
        if not word:
            return None
        lowered = word.lower()
        for case in CASES:
            if _apply_case(lowered, case) == word:
                break
        else:
            return None
        words.append(lowered)
        labels.append(_label(case, punctuation))
    if not words:
        return None
    return words, labels


def restore(words, labels):
    """The text that words and their labels stand for.

    Args:
        words: list of str (lower-cased words).
        labels: list of str, one per word (e.g. a model's predictions).
    Returns:
        str: each word with its case applied and its punctuation appended, joined by single spaces.
    """
    if len(words) != len(labels):
        raise ValueError(f"{len(words)} words but {len(labels)} labels; give one label per word.")
    out = []
    for word, label in zip(words, labels):
        case, punctuation = punctuation_case_families(label)
        out.append(_apply_case(word, case) + punctuation)
    return " ".join(out)


def derive_corpus(lines, path=None):
    """Derives the words and labels of many lines.

    Args:
        lines: iterable of str. Blank lines are skipped (not counted as dropped).
        path: optional, recorded as the data's `path`.
    Returns:
        `(data, dropped)`: a `TaggingData` of the kept lines in order, and the number of non-blank lines
        dropped because they cannot round-trip.
    """
    data, dropped = TaggingData([], [], path), 0
    for line in lines:
        if not line.strip():
            continue
        derived = derive(line)
        if derived is None:
            dropped += 1
            continue
        data.words.append(derived[0])
        data.labels.append(derived[1])
    return data, dropped


def detokenize_wikitext(line):
    """Undoes WikiText's tokenization where it touches what the corpus labels: `@-@`, `@,@` and `@.@` join
    their neighbours ("state @-@ of" -> "state-of", "1 @,@ 000" -> "1,000"), punctuation of `,.?!:;`
    rejoins the word before ("word , word ." -> "word, word."), and clitics rejoin too ("game 's" ->
    "game's", "did n't" is left as is). Quotes and brackets keep their spaces."""
    line = " ".join(line.split())
    line = re.sub(r" @([-,.])@ ", r"\1", line)
    line = re.sub(r" ([,.?!:;]+)(?= |$)", r"\1", line)
    return re.sub(r" '(s|t|re|m|ve|ll|d)(?= |$)", r"'\1", line)


def _source_lines(info, directory, split, language):
    """The lines of a split to derive from, and the file they come from."""
    from tflm.data.language_modeling import read_text_lines

    if info.task == "translation":
        if language not in info.languages:
            raise ValueError(f"language={language!r}: {info.name} is a translation corpus of "
                             f"{' and '.join(info.languages)}; pass language= one of them.")
        path = split_file(directory, split, language)
        return [line.strip() for line in read_text_lines(path)], path
    if info.task == "language_modeling":
        path = split_file(directory, split, "txt")
        lines = [line for line in read_text_lines(path)
                 if line.strip() and not _WIKITEXT_HEADER.match(line.rstrip("\n"))]
        if info.name.startswith("wikitext"):
            lines = [detokenize_wikitext(line) for line in lines]
        return [line.strip() for line in lines], path
    raise ValueError(f"{info.name} is a {info.task} corpus; a punctuation corpus is derived from a translation "
                     "corpus's one side (e.g. tatoeba-es-en) or a language-modelling corpus (e.g. wikitext-2-raw).")


def prepare_punctuation_corpus(dataset, data_dir, out_dir, language="en", deduplicate=True):
    """Writes a punctuation/case corpus derived from a registered corpus, keeping its train/valid/test split.

    A translation corpus gives its `language` side (`{split}.{language}`, one sentence a line); a
    language-modelling corpus its `{split}.txt`, one line (a paragraph) per example, without blank lines and
    WikiText headings (` = Title = `), WikiText's tokenization undone first (`detokenize_wikitext`).

    Writes into `out_dir`: `{train,valid,test}.conll` (`write_conll`: `word label` a line), `counts.json`
    and `SOURCE.md` (the source, the rule, the counts). The output depends only on the source files: the same
    bytes every time.

    Args:
        dataset: a registry name, e.g. "tatoeba-es-en" or "wikitext-2-raw".
        data_dir: a folder holding the corpus (as `find_dataset` takes it), or None.
        out_dir: the folder to write (created if needed).
        language: the side of a translation corpus.
        deduplicate: bool. Keep a line once per split (a translation corpus repeats a sentence once per
            translation: Tatoeba's "Go." four times).
    Returns:
        The counts (as in `counts.json`): `{"dataset", "language", "splits": {split: {"lines", "duplicates",
        "dropped", "kept", "words", "labels": {label: count}}}}`; `lines` counts the non-blank source lines,
        `kept + dropped + duplicates == lines`.
    """
    info = dataset_info(dataset)
    directory = find_dataset(dataset, data_dir)
    os.makedirs(out_dir, exist_ok=True)
    counts = {"dataset": dataset, "language": language if info.task == "translation" else None, "splits": {}}
    files = {}
    for split in SPLITS:
        lines, path = _source_lines(info, directory, split, language)
        lines = [line for line in lines if line]
        unique = list(dict.fromkeys(lines)) if deduplicate else lines
        data, dropped = derive_corpus(unique)
        write_conll(os.path.join(out_dir, f"{split}.conll"), data)
        labels = collections.Counter(label for sentence in data.labels for label in sentence)
        counts["splits"][split] = {
            "lines": len(lines), "duplicates": len(lines) - len(unique), "dropped": dropped, "kept": len(data),
            "words": sum(map(len, data.words)), "labels": dict(sorted(labels.items())),
        }
        files[split] = os.path.basename(path)
    with open(os.path.join(out_dir, "counts.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(counts, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out_dir, "SOURCE.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(_source_md(info, counts, files, deduplicate))
    return counts


def _source_md(info, counts, files, deduplicate):
    rows = []
    for split, c in counts["splits"].items():
        share = 100.0 * c["kept"] / max(c["lines"] - c["duplicates"], 1)
        rows.append(f"| {split} | {files[split]} | {c['lines']} | {c['duplicates']} | {c['dropped']} | {c['kept']} "
                    f"({share:.2f}%) | {c['words']} |")
    labels = collections.Counter()
    for c in counts["splits"].values():
        labels.update(c["labels"])
    label_rows = [f"| `{label}` | {count} |" for label, count in sorted(labels.items(), key=lambda x: (-x[1], x[0]))]
    side = f", the `{counts['language']}` side" if counts["language"] else ""
    text = [
        f"# Punctuation and capitalisation restoration from {info.name}",
        "",
        "Task: tagging (one label per word). Derived by `tflm.data.punctuation.prepare_punctuation_corpus` from "
        f"the registry corpus `{info.name}`{side} ({info.license}; {info.homepage}), keeping its train/valid/test "
        "split.",
        "",
        "## Rule",
        "Words are a line's whitespace-separated tokens. A token's punctuation is its trailing run of `,.?!:;`; "
        "its word is the rest, lower-cased; its case is `C` (Capitalised), `U` (UPPER, two or more letters) or "
        "none. Label = case + punctuation, `O` when both are empty. A line is dropped when its words and labels "
        "cannot rebuild it exactly (mixed case such as `iPhone`, a token that is only punctuation)"
        + (", and a line repeated within a split is kept once." if deduplicate else "."),
    ]
    if info.name.startswith("wikitext"):
        text.append("WikiText's tokenization (`@-@`, ` , `, ` 's`) is undone first; headings and blank lines are "
                    "skipped.")
    text += [
        "",
        "Layout: `{train,valid,test}.conll`, `word label` a line, a blank line after each sentence, UTF-8.",
        "",
        "## Counts",
        "",
        "| split | source | lines | duplicates | dropped | kept | words |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "## Labels (all splits)",
        "",
        "| label | words |",
        "|---|---:|",
        *label_rows,
    ]
    return "\n".join(text) + "\n"
