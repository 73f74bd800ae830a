"""Tables: CSV/TSV files with a header row, column selection, labels and stratified splits.

    table = read_table("messages.tsv")                 # columns + rows of strings
    data = labeled_texts(table, text_col="SMS", label_col="Label")
    data.label_names                                   # ['ham', 'spam']: sorted, id = position
    train, val, test = stratified_split(data.labels, (0.7, 0.1, 0.2), seed=0)

Two formats, told apart by the file name:
- `.tsv` / `.tab`: one record per line, fields separated by tabs, no quoting at all (a `"` is an
  ordinary character, as in most TSV data sets, the SMS Spam Collection among them).
- anything else (`.csv`): comma-separated with RFC 4180 quoting ("a, b" is one field, "" inside
  quotes is a quote), read by Python's csv module, so a field may hold commas and newlines.

Every problem a user can fix (no such file, not UTF-8, no header, a row with the wrong number of
fields, a missing column, an empty text, a single class) is a one-line `UserError`.
"""

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from fromscratch.errors import UserError

TSV_SUFFIXES = (".tsv", ".tab")


@dataclass
class Table:
    """A table of strings: `columns` (the header) and `rows`, each as long as `columns`."""

    columns: list[str]
    rows: list[list[str]]
    source: str = "table"  # where it came from, for error messages

    def column(self, name: str) -> list[str]:
        if name not in self.columns:
            raise UserError(f"{self.source} has no column {name!r}; its columns are: "
                            f"{', '.join(self.columns)}")
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def read_table(path: str | Path) -> Table:
    """Read a CSV or TSV file whose first line names the columns (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file {path}: give the path of a CSV or TSV file with a header row")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: drop a byte-order mark if present
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from err
    except OSError as err:
        raise UserError(f"cannot read {path}: {err}") from err
    if path.suffix.lower() in TSV_SUFFIXES:
        # split on "\n" only: str.splitlines would also break at characters such as U+2028
        records = [line.removesuffix("\r").split("\t") for line in text.split("\n")]
        line_numbers = range(1, len(records) + 1)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        records, line_numbers = [], []
        try:
            for record in reader:
                records.append(record)
                line_numbers.append(reader.line_num)
        except csv.Error as err:
            raise UserError(f"{path} is not valid CSV near line {reader.line_num}: {err}") from err
    # blank lines carry no record
    numbered = [(n, r) for n, r in zip(line_numbers, records, strict=True) if r not in ([], [""])]
    if not numbered:
        raise UserError(f"{path} is empty: it needs a header row and at least one data row")
    (_, header), body = numbered[0], numbered[1:]
    header = [name.strip() for name in header]
    if "" in header or len(set(header)) != len(header):
        raise UserError(f"{path}: the first line must name every column once, got {header}")
    for line, record in body:
        if len(record) != len(header):
            raise UserError(f"{path} line {line} has {len(record)} fields, the header has "
                            f"{len(header)}: check the separator and quoting of that line")
    return Table(header, [record for _, record in body], source=str(path))


@dataclass
class LabeledTexts:
    """Texts with class labels: labels[i] is an index into label_names."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int]) -> "LabeledTexts":
        return LabeledTexts([self.texts[i] for i in indices], [self.labels[i] for i in indices],
                            self.label_names)

    def counts(self) -> dict[str, int]:
        """Examples per class, by name."""
        return {name: self.labels.count(i) for i, name in enumerate(self.label_names)}


def encode_labels(values: list[str], label_names: list[str] | None = None
                  ) -> tuple[list[int], list[str]]:
    """Map label strings to ids: (ids, label_names). Names default to the sorted distinct values;
    given names fix the order (e.g. ["ham", "spam"] so that spam is class 1)."""
    if label_names is None:
        label_names = sorted(set(values))
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise UserError(f"labels {unknown[:5]} are not among the classes {label_names}")
    return [index[v] for v in values], list(label_names)


def labeled_texts(table: Table, text_col: str, label_col: str,
                  label_names: list[str] | None = None) -> LabeledTexts:
    """The (text, label) pairs of two columns; refuses empty texts and a single class."""
    texts = table.column(text_col)
    values = [v.strip() for v in table.column(label_col)]
    for row, (text, value) in enumerate(zip(texts, values, strict=True), start=1):
        if not text.strip():
            raise UserError(f"{table.source}: data row {row} has an empty {text_col!r}; "
                            "remove that row or fill it in")
        if not value:
            raise UserError(f"{table.source}: data row {row} has an empty {label_col!r}")
    labels, names = encode_labels(values, label_names)
    if len(set(labels)) < 2:
        raise UserError(f"{table.source}: column {label_col!r} holds a single class "
                        f"({names[labels[0]]!r}); a classifier needs at least two")
    return LabeledTexts(texts, labels, names)


def stratified_split(labels: list[int], fractions: tuple[float, ...] = (0.7, 0.1, 0.2),
                     seed: int = 0) -> list[list[int]]:
    """Split example indices into parts of the given fractions, each class split alike.

    Within each class the indices are shuffled (torch.Generator seeded with `seed`), then cut
    at the rounded cumulative fractions, so every part holds about the same share of every
    class as the whole (e.g. 13.4% spam in train, validation and test). The same labels and
    seed always give the same split. Each part is returned in increasing index order.
    """
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise UserError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    by_class = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in sorted(by_class):
        members = by_class[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        shuffled = [members[j] for j in order]
        cumulative, start = 0.0, 0
        for part, fraction in zip(parts, fractions, strict=True):
            cumulative += fraction
            end = round(cumulative * len(shuffled))
            part.extend(shuffled[start:end])
            start = end
    return [sorted(part) for part in parts]
