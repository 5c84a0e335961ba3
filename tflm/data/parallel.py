"""Reading line-aligned parallel text, with every dropped line counted and reported."""

import dataclasses
import itertools
import logging

from tflm.data.registry import open_text

logger = logging.getLogger("tflm")


class ParallelDataError(ValueError):
    """Raised when two parallel files cannot be aligned."""


class DropReport:
    """Counts dropped (or truncated) examples by reason, remembering the first few line numbers of each.

    Example:
    >>> report = DropReport("train.en/train.es")
    >>> report.add("empty", 17)
    >>> report.summary()
    'train.en/train.es: 1 empty (line 17)'
    """

    def __init__(self, where, first=5):
        self.where = where
        self.first = first
        self.counts = {}
        self.lines = {}

    def add(self, reason, line_number):
        self.counts[reason] = self.counts.get(reason, 0) + 1
        lines = self.lines.setdefault(reason, [])
        if len(lines) < self.first:
            lines.append(line_number)

    def total(self):
        return sum(self.counts.values())

    def summary(self):
        parts = []
        for reason, count in self.counts.items():
            shown = ", ".join(str(n) for n in self.lines[reason])
            more = ", ..." if count > len(self.lines[reason]) else ""
            noun = "line" if len(self.lines[reason]) == 1 and not more else "lines"
            parts.append(f"{count} {reason} ({noun} {shown}{more})")
        return f"{self.where}: " + "; ".join(parts)

    def log(self, action="dropped"):
        if self.counts:
            logger.warning("%s %s", action, self.summary())


@dataclasses.dataclass
class ParallelCorpus:
    """Aligned sentence pairs that survived reading.

    Attributes:
        source, target: lists of str, whitespace-normalized, never empty.
        line_numbers: 1-based line number of each pair in the files.
        source_path, target_path: where they were read from.
        dropped: the `DropReport` of the pairs left out.
    """

    source: list
    target: list
    line_numbers: list
    source_path: str
    target_path: str
    dropped: DropReport

    def __len__(self):
        return len(self.source)

    def head(self, n):
        """The first `n` pairs, as a new corpus (for quick runs and tests)."""
        return dataclasses.replace(
            self, source=self.source[:n], target=self.target[:n], line_numbers=self.line_numbers[:n]
        )


def _decode(line):
    return " ".join(line.decode("utf-8").split())


def read_parallel(source_path, target_path, max_pairs=None):
    """Reads two line-aligned files (plain or `.gz`) into a `ParallelCorpus`.

    Pairs where either side is empty or not valid UTF-8 are dropped, counted, and logged with the first
    line numbers. Files with different line counts are an error.

    Args:
        source_path, target_path: paths of the two files; line i of one translates line i of the other.
        max_pairs: optional int. Read at most this many lines.
    Raises:
        ParallelDataError: if the files have different numbers of lines.
    """
    report = DropReport(f"{source_path} / {target_path}")
    source, target, line_numbers = [], [], []
    with open_text(source_path) as source_file, open_text(target_path) as target_file:
        pairs = itertools.zip_longest(source_file, target_file)
        for number, (source_line, target_line) in enumerate(pairs, start=1):
            if source_line is None or target_line is None:
                source_count = number - 1 + (source_line is not None) + sum(1 for _ in source_file)
                target_count = number - 1 + (target_line is not None) + sum(1 for _ in target_file)
                raise ParallelDataError(
                    f"{source_path} has {source_count} lines but {target_path} has {target_count}: parallel "
                    "files must be line-aligned (line i of one translates line i of the other). Check for a "
                    "missing or extra line, or a sentence containing a line break."
                )
            if max_pairs is not None and number > max_pairs:
                break
            try:
                source_text = _decode(source_line)
            except UnicodeDecodeError:
                report.add(f"not UTF-8 in {source_path}", number)
                continue
            try:
                target_text = _decode(target_line)
            except UnicodeDecodeError:
                report.add(f"not UTF-8 in {target_path}", number)
                continue
            if not source_text or not target_text:
                report.add("empty", number)
                continue
            source.append(source_text)
            target.append(target_text)
            line_numbers.append(number)
    report.log()
    logger.info("Read %d sentence pairs from %s / %s", len(source), source_path, target_path)
    return ParallelCorpus(source, target, line_numbers, source_path, target_path, report)


def read_lines(path):
    """Reads a text file (plain or `.gz`) into a list of whitespace-normalized lines.

    Raises a `UnicodeDecodeError`-derived `ValueError` naming the file and line on invalid UTF-8.
    """
    lines = []
    with open_text(path) as f:
        for number, line in enumerate(f, start=1):
            try:
                lines.append(_decode(line))
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid UTF-8 ({error.reason}); re-encode the file as UTF-8.")
    return lines
