"""JSB chorales: download (from a local HTTP server) with its hash, piano rolls, batches."""

import hashlib
import json

import pytest
import torch
from test_data_text import needs_copy
from test_data_text import server as server  # noqa: F401, F811  (the local HTTP server fixture)

from fromscratch.data import local_copy, music
from fromscratch.data.music import (
    ChoraleBatches,
    load_jsb,
    pad_rolls,
    to_piano_roll,
    transpose_roll,
)
from fromscratch.errors import UserError

JSB = "jsb-chorales"  # the name of its copy kept on this machine

TINY = {"train": [[[60, 64, 67], [62]], [[]]], "valid": [[[21, 108]]], "test": [[[48], [50]]]}


def test_download_checks_the_hash_and_caches(server, tmp_path, monkeypatch):
    content = json.dumps(TINY).encode()
    (server.folder / "jsb.json").write_bytes(content)
    monkeypatch.setitem(music.JSB_SHA256, "quarter", hashlib.sha256(content).hexdigest())
    url = server.url + "/jsb.json"
    assert load_jsb("quarter", cache_dir=tmp_path, url=url, progress=False) == TINY
    assert load_jsb("quarter", cache_dir=tmp_path, url=url, progress=False) == TINY
    assert server.requests == ["/jsb.json"]
    monkeypatch.setitem(music.JSB_SHA256, "16th", "0" * 64)
    with pytest.raises(UserError, match="SHA-256"):
        load_jsb("16th", cache_dir=tmp_path / "other", url=url, progress=False)


def test_local_files_and_their_errors(tmp_path):
    (tmp_path / "jsb-chorales-quarter.json").write_text(json.dumps(TINY))
    assert load_jsb("quarter", tmp_path) == TINY
    with pytest.raises(UserError, match="unknown resolution"):
        load_jsb("8th", tmp_path)
    with pytest.raises(UserError, match="no file"):
        load_jsb("16th", tmp_path)
    (tmp_path / "jsb-chorales-16th.json").write_text('{"train": []}')
    with pytest.raises(UserError, match="train, valid and test"):
        load_jsb("16th", tmp_path)
    (tmp_path / "jsb-chorales-16th.json").write_text("{oops")
    with pytest.raises(UserError, match="not a JSB chorales JSON"):
        load_jsb("16th", tmp_path)


def test_piano_roll():
    roll = to_piano_roll(TINY["train"][0])
    assert roll.shape == (2, 88)
    assert roll[0].nonzero().flatten().tolist() == [39, 43, 46] and roll[1].sum() == 1
    assert to_piano_roll(TINY["valid"][0])[0].nonzero().flatten().tolist() == [0, 87]
    with pytest.raises(UserError, match="outside the piano"):
        to_piano_roll([[20]])


def test_transpose_moves_every_note_and_refuses_to_fall_off():
    roll = to_piano_roll([[60, 64], [67]])
    up = transpose_roll(roll, 3)
    assert up[0].nonzero().flatten().tolist() == [42, 46] and up[1, 49] == 1
    assert torch.equal(transpose_roll(up, -3), roll)
    with pytest.raises(UserError, match="off the keyboard"):
        transpose_roll(to_piano_roll([[100]]), 9)


def test_batches_are_seeded_padded_and_transposed():
    rolls = [to_piano_roll([[60 + i]] * (i + 1)) for i in range(6)]
    batches = ChoraleBatches(rolls, batch_size=4, seed=2, max_transpose=2)
    padded, mask = batches(5)
    again = batches(5)
    assert torch.equal(padded, again[0]) and torch.equal(mask, again[1])
    assert padded.shape[0] == 4 and padded.shape[2] == 88
    for row, real in zip(padded, mask, strict=True):
        length = int(real.sum())
        assert (row[length:] == 0).all() and (row[:length].sum(1) == 1).all()
        key = int(row[0].argmax())  # chorale i is pitch 60 + i repeated i + 1 times
        assert abs((key + 21 - 60) - (length - 1)) <= 2  # moved at most two semitones
    x, m = pad_rolls(rolls[:2])
    assert x.shape == (2, 2, 88) and m.tolist() == [[True, False], [True, True]]


@needs_copy(JSB)
def test_the_real_data_set_has_the_standard_split_and_pinned_hashes():
    for resolution in ("quarter", "16th"):
        path = local_copy(JSB) / f"jsb-chorales-{resolution}.json"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == music.JSB_SHA256[resolution]
    data = load_jsb("quarter", local_copy(JSB))
    assert {k: len(v) for k, v in data.items()} == {"train": 229, "valid": 76, "test": 77}
    assert sum(len(c) for c in data["test"]) == 4725  # time steps in the quarter-note test set
