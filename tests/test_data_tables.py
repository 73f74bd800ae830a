"""Tables (CSV/TSV with a header), labels, stratified splits, and the SMS Spam Collection:
its download from a local HTTP server serving a zip built here, and the real file's counts."""

import hashlib
import io
import zipfile

import pytest
import test_data_text
from test_data_text import needs_copy

from fromscratch.data import local_copy, sms
from fromscratch.data.sms import load_sms, sms_path, sms_splits
from fromscratch.data.tables import (
    encode_labels,
    labeled_texts,
    read_table,
    stratified_split,
)
from fromscratch.errors import UserError

SMS_TSV = "sms_spam_collection.tsv"  # the name of its copy kept on this machine


# ---------------------------------------------------------------------------------------------
# reading tables
# ---------------------------------------------------------------------------------------------
def test_tsv_has_no_quoting_and_csv_has_rfc4180_quoting(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text('label\ttext\nham\tsay "hi", ok\r\nspam\t"free" prize\n\n', encoding="utf-8")
    table = read_table(tsv)
    assert table.columns == ["label", "text"]
    assert table.rows == [["ham", 'say "hi", ok'], ["spam", '"free" prize']]

    csv = tmp_path / "a.csv"
    csv.write_text('text,label\n"one, two",a\n"line\nbreak and ""quote""",b\n', encoding="utf-8")
    table = read_table(csv)
    assert table.column("text") == ["one, two", 'line\nbreak and "quote"']
    assert table.column("label") == ["a", "b"]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello,a\n".encode())
    assert read_table(path).columns == ["text", "label"]


@pytest.mark.parametrize("name, content, message", [
    ("missing.tsv", None, "no file"),
    ("empty.csv", "", "is empty"),
    ("blank.tsv", "\n\n", "is empty"),
    ("ragged.tsv", "a\tb\nx\ty\tz\n", "line 2 has 3 fields, the header has 2"),
    ("ragged.csv", "a,b\n1,2\n3\n", "line 3 has 1 fields"),
    ("dup.csv", "a,a\n1,2\n", "name every column once"),
    ("unnamed.csv", "a,\n1,2\n", "name every column once"),
    ("quote.csv", 'a,b\n"open,2\n', "not valid CSV"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_not_utf8_is_a_one_line_error(tmp_path):
    path = tmp_path / "latin.tsv"
    path.write_bytes("a\tb\ncaf\xe9\tx\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_table(path)


def test_labeled_texts_selects_columns_and_refuses_bad_data(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("id\tmsg\tcls\n1\thello\tb\n2\tworld\ta\n3\tagain\tb\n")
    data = labeled_texts(read_table(path), "msg", "cls")
    assert data.texts == ["hello", "world", "again"]
    assert data.label_names == ["a", "b"] and data.labels == [1, 0, 1]
    assert data.counts() == {"a": 1, "b": 2}
    assert labeled_texts(read_table(path), "msg", "cls", ["b", "a"]).labels == [0, 1, 0]

    with pytest.raises(UserError, match="no column 'text'; its columns are: id, msg, cls"):
        labeled_texts(read_table(path), "text", "cls")
    path.write_text("msg\tcls\nhello\ta\n  \tb\n")
    with pytest.raises(UserError, match="data row 2 has an empty 'msg'"):
        labeled_texts(read_table(path), "msg", "cls")
    path.write_text("msg\tcls\nhello\ta\nworld\ta\n")
    with pytest.raises(UserError, match="single class"):
        labeled_texts(read_table(path), "msg", "cls")


def test_encode_labels_with_unknown_label():
    assert encode_labels(["y", "x", "y"]) == ([1, 0, 1], ["x", "y"])
    with pytest.raises(UserError, match=r"\['z'\] are not among"):
        encode_labels(["x", "z"], ["x", "y"])


# ---------------------------------------------------------------------------------------------
# stratified split
# ---------------------------------------------------------------------------------------------
def test_stratified_split_partitions_and_keeps_class_shares():
    labels = [0] * 870 + [1] * 130
    train, val, test = stratified_split(labels, (0.7, 0.1, 0.2), seed=3)
    assert sorted(train + val + test) == list(range(1000))  # a partition: each index once
    for part, size in ((train, 700), (val, 100), (test, 200)):
        assert len(part) == size
        assert sum(labels[i] for i in part) == round(size * 0.13)
    assert stratified_split(labels, (0.7, 0.1, 0.2), seed=3) == [train, val, test]
    assert stratified_split(labels, (0.7, 0.1, 0.2), seed=4) != [train, val, test]


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(UserError, match="sum to 1"):
        stratified_split([0, 1], (0.5, 0.4))


# ---------------------------------------------------------------------------------------------
# the SMS Spam Collection: download (from `http_server`: a local HTTP server, see test_data_text.py)
# ---------------------------------------------------------------------------------------------
http_server = test_data_text.server  # the fixture: a local HTTP server serving .folder


def make_zip(member_name: str, member: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme", "SMS Spam Collection v.1\n")
        zf.writestr(member_name, member)
    return buffer.getvalue()


def serve_zip(server, monkeypatch, member: bytes, member_name="SMSSpamCollection") -> str:
    archive = make_zip(member_name, member)
    (server.folder / "sms.zip").write_bytes(archive)
    monkeypatch.setattr(sms, "SMS_ZIP_SHA256", hashlib.sha256(archive).hexdigest())
    return server.url + "/sms.zip"


def test_download_unpacks_checks_and_caches(http_server, tmp_path, monkeypatch):
    member = b"ham\tsee you at 5\nspam\tWIN a prize, call now\nham\tok\n"
    monkeypatch.setattr(sms, "SMS_MEMBER_SHA256", hashlib.sha256(member).hexdigest())
    url = serve_zip(http_server, monkeypatch, member)
    cache = tmp_path / "cache"
    data = load_sms(cache_dir=cache, url=url, progress=False)
    assert data.texts == ["see you at 5", "WIN a prize, call now", "ok"]
    assert data.labels == [0, 1, 0] and data.label_names == ["ham", "spam"]
    assert (cache / "sms_spam_collection.tsv").read_bytes() == b"Label\tSMS\n" + member
    assert load_sms(cache_dir=cache, url=url, progress=False).texts == data.texts
    assert http_server.requests == ["/sms.zip"]  # the second call used the cache
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files


def test_download_with_a_wrong_archive_hash_caches_nothing(http_server, tmp_path, monkeypatch):
    url = serve_zip(http_server, monkeypatch, b"ham\thi\n")
    monkeypatch.setattr(sms, "SMS_ZIP_SHA256", "0" * 64)
    with pytest.raises(UserError, match="SHA-256"):
        sms_path(tmp_path / "cache", url=url, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_zip_without_the_data_file_or_with_another_file_is_refused(http_server, tmp_path,
                                                                     monkeypatch):
    url = serve_zip(http_server, monkeypatch, b"ham\thi\n", member_name="other.txt")
    with pytest.raises(UserError, match="not the SMS Spam Collection archive"):
        sms_path(tmp_path / "a", url=url, progress=False)
    url = serve_zip(http_server, monkeypatch, b"ham\thi\nspam\tchanged\n")
    with pytest.raises(UserError, match="not the expected file"):
        sms_path(tmp_path / "b", url=url, progress=False)
    assert not (tmp_path / "b" / "sms_spam_collection.tsv").exists()


@needs_copy(SMS_TSV)
def test_the_real_data_file_passes_the_pinned_member_hash(http_server, tmp_path, monkeypatch):
    kept = local_copy(SMS_TSV).read_bytes()
    member = kept.split(b"\n", 1)[1]  # the kept copy = header + the UCI file
    url = serve_zip(http_server, monkeypatch, member)  # only the zip's own hash is ours
    path = sms_path(tmp_path, url=url, progress=False)
    assert path.read_bytes() == kept


# ---------------------------------------------------------------------------------------------
# the SMS Spam Collection: the real data and its fixed split
# ---------------------------------------------------------------------------------------------
@needs_copy(SMS_TSV)
def test_real_sms_counts_and_fixed_stratified_split():
    data = load_sms(local_copy(SMS_TSV))
    assert len(data) == 5574 and data.counts() == {"ham": 4827, "spam": 747}
    splits = sms_splits(data)
    sizes = {name: len(part) for name, part in splits.items()}
    # per class, cut at round(0.7 n) and round(0.8 n): ham 4827 -> 3379 / 483 / 965,
    # spam 747 -> 523 / 75 / 149
    assert sizes == {"train": 3379 + 523, "validation": 483 + 75, "test": 965 + 149}
    assert splits["test"].counts() == {"ham": 965, "spam": 149}
    for part in splits.values():
        assert abs(part.counts()["spam"] / len(part) - 747 / 5574) < 0.002
    assert sms_splits(load_sms(local_copy(SMS_TSV)))["test"].texts == splits["test"].texts
