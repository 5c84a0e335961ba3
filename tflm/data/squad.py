"""Reading and writing SQuAD v1.1 / v2.0 JSON files for extractive question answering.

The layout (both versions; `.gz` is read and written transparently):

    {"version": "v2.0",
     "data": [{"title": "...",
               "paragraphs": [{"context": "...",
                               "qas": [{"id": "...", "question": "...",
                                        "answers": [{"text": "...", "answer_start": 12}],
                                        "is_impossible": false}]}]}]}

`answer_start` is a character offset (a Python `str` index) into the context, and every answer must be the
context's text at that offset. v2.0 adds `is_impossible` (and `plausible_answers`, which are not answers and are
ignored); an unanswerable question is read with `answers=[]`.

Example:
>>> write_squad("dev.json", [QAExample("q1", "Zürich", "Where?", "It is in Zürich.",
...                                    [{"text": "Zürich", "answer_start": 9}], False)])
>>> read_squad("dev.json")[0].answers
[{'text': 'Zürich', 'answer_start': 9}]
"""

import dataclasses
import gzip
import json
import logging

from tflm.data.registry import open_text

logger = logging.getLogger("tflm")


class SquadDataError(ValueError):
    """Raised when a SQuAD file cannot be read: its message names the file, the question id and the fix."""


@dataclasses.dataclass
class QAExample:
    """One question about one context.

    Attributes:
        id: str. The question's id (unique in its file; predictions are keyed by it).
        title: str. The title of the article the context comes from.
        question: str.
        context: str. The paragraph the answer is taken from.
        answers: list of `{"text": str, "answer_start": int}`, each `context[answer_start:][:len(text)] == text`
            (character offsets). Empty for an unanswerable question. Training uses the first one; evaluation
            takes the best score over all of them.
        is_impossible: bool. True for a SQuAD v2.0 question the context does not answer.
    """

    id: str
    title: str
    question: str
    context: str
    answers: list
    is_impossible: bool = False

    @property
    def answer_texts(self):
        """The gold answers' texts."""
        return [answer["text"] for answer in self.answers]


def read_squad(path, skip_misaligned=False):
    """Reads a SQuAD v1.1 or v2.0 JSON file.

    Args:
        path: the file (plain or `.gz`).
        skip_misaligned: bool. By default an answer that is not the context's text at its `answer_start` is an
            error; True drops such answers instead (and questions left without answers, unless unanswerable),
            logging how many, for third-party files with a few bad offsets.
    Returns:
        A list of `QAExample`, in file order.
    Raises:
        SquadDataError: naming the file and the question id, for text that is not JSON, a missing or
            mistyped field, a repeated id, an answerable question without answers, or an answer whose
            `answer_start` does not point at its text.
    """
    path = str(path)
    try:
        with open_text(path) as f:
            document = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise SquadDataError(f"{path}: not valid UTF-8 ({error.reason}); re-encode the file as UTF-8.") from None
    except json.JSONDecodeError as error:
        raise SquadDataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                             "a SQuAD file is one JSON object {\"version\", \"data\": [...]}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SquadDataError(f"{path}: expected a JSON object with a \"data\" list of articles (the SQuAD layout); "
                             f"found {_describe(document)}.")
    examples, seen, dropped = [], set(), 0
    for a, article in enumerate(document["data"]):
        where = f"{path}: data[{a}]"
        _expect(article, dict, where, "an article object {\"title\", \"paragraphs\"}")
        title = article.get("title", "")
        _expect(title, str, f"{where}.title", "a string")
        paragraphs = _field(article, "paragraphs", list, where)
        for p, paragraph in enumerate(paragraphs):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            _expect(paragraph, dict, where, "a paragraph object {\"context\", \"qas\"}")
            context = _field(paragraph, "context", str, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, where)):
                where = f"{path}: data[{a}].paragraphs[{p}].qas[{q}]"
                _expect(qa, dict, where, "a question object {\"id\", \"question\", \"answers\"}")
                qid = _field(qa, "id", (str, int), where)
                qid = str(qid)
                where = f"{path}: question id {qid!r}"
                if qid in seen:
                    raise SquadDataError(f"{where}: the id repeats; ids must be unique (predictions are keyed by "
                                         "them).")
                seen.add(qid)
                question = _field(qa, "question", str, where)
                impossible = qa.get("is_impossible", False)
                _expect(impossible, bool, f"{where}: is_impossible", "true or false")
                answers = []
                if not impossible:
                    for n, answer in enumerate(_field(qa, "answers", list, where)):
                        aligned = _answer(answer, context, f"{where}: answers[{n}]", skip_misaligned)
                        if aligned is None:
                            dropped += 1
                        else:
                            answers.append(aligned)
                    if not answers:
                        if dropped and skip_misaligned:
                            continue
                        raise SquadDataError(f"{where}: no answers, and is_impossible is not true; give the "
                                             "question an answer or mark it \"is_impossible\": true (SQuAD v2.0).")
                examples.append(QAExample(qid, title, question, context, answers, impossible))
    if dropped:
        logger.warning("%s: dropped %d answers whose answer_start does not point at their text.", path, dropped)
    if not examples:
        raise SquadDataError(f"{path}: no questions; a SQuAD file holds data[].paragraphs[].qas[].")
    return examples


def write_squad(path, examples, version="2.0"):
    """Writes examples as a SQuAD JSON file (`.gz` compressed if `path` ends with `.gz`).

    Consecutive examples with the same title form one article, and with the same context one paragraph.

    Args:
        path: the file to write.
        examples: list of `QAExample`.
        version: "1.1" or "2.0". v2.0 writes `is_impossible` for every question; v1.1 has no unanswerable
            questions, so an impossible example is an error.
    """
    if version not in ("1.1", "2.0"):
        raise ValueError(f"version={version!r}; write SQuAD version \"1.1\" or \"2.0\".")
    data = []
    for example in examples:
        if example.is_impossible and version == "1.1":
            raise ValueError(f"question id {example.id!r} is unanswerable, which SQuAD v1.1 cannot hold; write "
                             "version=\"2.0\".")
        if not data or data[-1]["title"] != example.title:
            data.append({"title": example.title, "paragraphs": []})
        paragraphs = data[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != example.context:
            paragraphs.append({"context": example.context, "qas": []})
        qa = {"id": example.id, "question": example.question,
              "answers": [] if example.is_impossible else
              [{"text": answer["text"], "answer_start": answer["answer_start"]} for answer in example.answers]}
        if version == "2.0":
            qa["is_impossible"] = bool(example.is_impossible)
        paragraphs[-1]["qas"].append(qa)
    text = json.dumps({"version": f"v{version}", "data": data}, ensure_ascii=False)
    path = str(path)
    with (gzip.open(path, "wt", encoding="utf-8") if path.endswith(".gz") else
          open(path, "w", encoding="utf-8")) as f:
        f.write(text)


def _answer(answer, context, where, skip_misaligned):
    """The answer as `{"text", "answer_start"}` if it is the context's text at its offset (None to drop it)."""
    _expect(answer, dict, where, "an answer object {\"text\", \"answer_start\"}")
    text = _field(answer, "text", str, where)
    start = _field(answer, "answer_start", int, where)
    if not text:
        raise SquadDataError(f"{where}: the answer text is empty; give its text, or mark the question "
                             "\"is_impossible\": true.")
    found = context[start:start + len(text)] if 0 <= start else ""
    if found != text:
        if skip_misaligned:
            return None
        hint = context.find(text)
        fix = (f"it occurs at answer_start={hint}" if hint >= 0 else "the context does not contain it")
        raise SquadDataError(f"{where}: answer_start={start} points at {found!r}, not at the answer {text!r} "
                             f"({fix}); fix answer_start (a character offset into the context), or pass "
                             "skip_misaligned=True to drop such answers.")
    return {"text": text, "answer_start": start}


def _field(record, key, kind, where):
    if key not in record:
        raise SquadDataError(f"{where}: the field {key!r} is missing; SQuAD needs it (see tflm.data.squad).")
    value = record[key]
    _expect(value, kind, f"{where}: {key}", _kind_name(kind))
    return value


def _expect(value, kind, where, expected):
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (str, int))):
        raise SquadDataError(f"{where} is {_describe(value)}; expected {expected}.")


def _kind_name(kind):
    return {str: "a string", int: "an integer", list: "a list", (str, int): "a string"}.get(kind, str(kind))


def _describe(value):
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) < 60 else text[:57] + "..."
