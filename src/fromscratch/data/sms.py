"""The SMS Spam Collection: 5,574 text messages labelled ham (4,827) or spam (747).

Almeida & Gómez Hidalgo (2011), UCI Machine Learning Repository, CC BY 4.0. On first use the
UCI archive (a 203 kB zip) is downloaded into the cache folder and checked against its SHA-256;
its one data file `SMSSpamCollection` (lines "label<TAB>text", no header) is checked too and
kept as `sms_spam_collection.tsv` with a header line `Label<TAB>SMS`, so it reads like any other
table (`data.tables`).

    data = load_sms()                      # LabeledTexts; label_names ["ham", "spam"]
    splits = sms_splits(data)              # {"train", "validation", "test"}: fixed, stratified

The split is 70 / 10 / 20 within each class with a fixed seed: every model of the benchmark and
the lesson is tuned on "validation" and reported once on "test".
"""

import hashlib
import zipfile
from pathlib import Path

from fromscratch.data import default_cache_dir, download
from fromscratch.data.tables import LabeledTexts, labeled_texts, read_table, stratified_split
from fromscratch.errors import UserError
from fromscratch.folders import write_bytes

SMS_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_ZIP_SHA256 = "1587ea43e58e82b14ff1f5425c88e17f8496bfcdb67a583dbff9eefaf9963ce3"
SMS_MEMBER = "SMSSpamCollection"  # the data file inside the zip
SMS_MEMBER_SHA256 = "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
SMS_FILE = "sms_spam_collection.tsv"
HEADER = b"Label\tSMS\n"
TEXT_COL, LABEL_COL = "SMS", "Label"
LABEL_NAMES = ["ham", "spam"]  # spam is class 1, the "positive" class of precision and F1
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, validation, test
SPLIT_SEED = 0


def sms_path(cache_dir: str | Path | None = None, *, url: str = SMS_URL,
             progress: bool = True) -> Path:
    """The cached `sms_spam_collection.tsv`, downloaded and unpacked on first use."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / SMS_FILE
    if path.is_file():
        return path
    archive = download(url, folder / "sms+spam+collection.zip", SMS_ZIP_SHA256, progress=progress)
    try:
        with zipfile.ZipFile(archive) as zf:
            member = zf.read(SMS_MEMBER)
    except (zipfile.BadZipFile, KeyError) as err:
        raise UserError(f"{archive} is not the SMS Spam Collection archive ({err}); "
                        "delete it and try again") from err
    if hashlib.sha256(member).hexdigest() != SMS_MEMBER_SHA256:
        raise UserError(f"{SMS_MEMBER} inside {archive} is not the expected file; delete the "
                        "archive and try again")
    write_bytes(path, HEADER + member)
    return path


def load_sms(path: str | Path | None = None, *, cache_dir: str | Path | None = None,
             url: str = SMS_URL, progress: bool = True) -> LabeledTexts:
    """All 5,574 messages, from `path` (a TSV with columns Label and SMS) or the cache."""
    if path is None:
        path = sms_path(cache_dir, url=url, progress=progress)
    return labeled_texts(read_table(path), TEXT_COL, LABEL_COL, label_names=LABEL_NAMES)


def sms_splits(data: LabeledTexts) -> dict[str, LabeledTexts]:
    """The fixed stratified 70 / 10 / 20 split: {"train", "validation", "test"}."""
    parts = stratified_split(data.labels, SPLIT_FRACTIONS, seed=SPLIT_SEED)
    names = ("train", "validation", "test")
    return {name: data.subset(idx) for name, idx in zip(names, parts, strict=True)}
