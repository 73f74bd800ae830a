"""Text data: downloads (from a local HTTP server), file checks, splits, batches, exact eval."""

import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from fromscratch.data import (
    CHECKOUT_DATA,
    DATA_ENV,
    DataUnavailable,
    default_cache_dir,
    local_copy,
    text,
)
from fromscratch.data.text import (
    LMBatches,
    evaluate_lm,
    iter_eval_windows,
    load_text,
    split_train_val,
)
from fromscratch.errors import UserError


def needs_copy(name: str) -> pytest.MarkDecorator:
    """Skip the test unless the data `name` has a copy kept on this machine (`local_copy`)."""
    return pytest.mark.skipif(local_copy(name) is None, reason=(
        f"needs a copy of {name} kept on this machine: set {DATA_ENV} to a folder holding it "
        f"(the data sets' names are those of the download cache, see fromscratch.data)"))


@pytest.fixture
def server(tmp_path):
    """A threaded HTTP server on localhost serving tmp_path/served, counting GET requests."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", folder=served,
                          requests=requests)
    httpd.shutdown()
    httpd.server_close()


def test_download_with_wrong_hash_fails_and_caches_nothing(server, tmp_path):
    (server.folder / "input.txt").write_text("not Shakespeare\n")
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="SHA-256"):
        load_text("shakespeare", cache_dir=cache, url=server.url + "/input.txt", progress=False)
    assert server.requests == ["/input.txt"] * 3  # wrong bytes: each of 3 attempts starts afresh
    assert list(cache.iterdir()) == []  # neither the file nor a partial temp file


def test_download_caches_and_second_call_makes_no_request(server, tmp_path, monkeypatch):
    content = "To be, or not to be, that is the question.\n" * 200
    (server.folder / "input.txt").write_text(content)
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", hashlib.sha256(content.encode()).hexdigest())
    cache = tmp_path / "cache"
    url = server.url + "/input.txt"
    assert load_text("shakespeare", cache_dir=cache, url=url, progress=False) == content
    assert [p.name for p in cache.iterdir()] == ["tinyshakespeare.txt"]
    assert load_text("shakespeare", cache_dir=cache, url=url, progress=False) == content
    assert len(server.requests) == 1


@needs_copy("tinyshakespeare.txt")
def test_download_real_tiny_shakespeare_matches_its_hash(server, tmp_path):
    (server.folder / "input.txt").write_bytes(local_copy("tinyshakespeare.txt").read_bytes())
    corpus = load_text("shakespeare", cache_dir=tmp_path, url=server.url + "/input.txt",
                       progress=False)
    assert len(corpus) == 1_115_394
    assert corpus.startswith("First Citizen:")


def test_offline_download_says_what_to_do(tmp_path):
    with pytest.raises(DataUnavailable, match="could not download.*put the file at .* yourself"):
        load_text("shakespeare", cache_dir=tmp_path, url="http://127.0.0.1:1/input.txt",
                  progress=False)
    assert list(tmp_path.iterdir()) == []


def test_local_copies_are_read_from_the_folder_the_environment_names(monkeypatch, tmp_path):
    (tmp_path / "jsb-chorales").mkdir()
    (tmp_path / "notes.txt").write_text("kept here")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert local_copy("jsb-chorales") == tmp_path / "jsb-chorales"  # a folder
    assert local_copy("notes.txt") == tmp_path / "notes.txt"  # a file
    assert local_copy("sms_spam_collection.tsv") is None  # not kept here: download it
    monkeypatch.setenv(DATA_ENV, "")  # unset: the folder beside the repository
    expected = CHECKOUT_DATA / "jsb-chorales"
    assert local_copy("jsb-chorales") == (expected if expected.exists() else None)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FROMSCRATCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


def test_pydoc_text_is_large_and_stable():
    corpus = load_text("pydoc")
    assert len(corpus) > 400_000
    assert corpus == load_text("pydoc")
    assert "The \"for\" statement" in corpus or "for_stmt" in corpus


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "no such file"),
        ("folder", "dir", "is a folder"),
        ("empty.txt", b"", "is empty"),
        ("binary.bin", b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        ("latin1.txt", "café crème".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_text_files_give_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        load_text(str(path))
    assert "\n" not in str(error.value)


def test_text_file_is_read_as_utf8(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Ünïcödé 🙂\n", encoding="utf-8")
    assert load_text(str(path)) == "Ünïcödé 🙂\n"


def test_split_is_first_ninety_percent_then_the_rest():
    train, val = split_train_val("abcdefghij" * 100)
    assert (len(train), len(val)) == (900, 100)
    assert train + val == "abcdefghij" * 100
    ids = torch.arange(1001)
    train_ids, val_ids = split_train_val(ids)
    assert (len(train_ids), len(val_ids)) == (900, 101)
    assert val_ids[0].item() == 900
    with pytest.raises(UserError):
        split_train_val(ids, train_fraction=1.0)


def test_lm_batches_are_a_pure_function_of_seed_step_micro():
    ids = torch.arange(1000)  # with ids = positions, a window shows where it was cut
    batches = LMBatches(ids, block_size=16, batch_size=8, seed=7)
    x, y = batches(step=3, micro=1)
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.long
    assert torch.equal(x, x[:, :1] + torch.arange(16))  # each row is a contiguous window
    assert torch.equal(y, x + 1)  # targets are the next tokens
    again = LMBatches(ids, block_size=16, batch_size=8, seed=7)(step=3, micro=1)
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
    assert not torch.equal(batches(step=4, micro=1)[0], x)
    assert not torch.equal(batches(step=3, micro=0)[0], x)
    assert not torch.equal(LMBatches(ids, 16, 8, seed=8)(step=3, micro=1)[0], x)
    starts = torch.cat([batches(step)[0][:, 0] for step in range(300)])
    assert starts.min() >= 0 and starts.max() <= 1000 - 16 - 1
    assert starts.max() >= 1000 - 16 - 10  # windows reach the end of the text


def test_lm_batches_need_more_tokens_than_a_block():
    with pytest.raises(UserError, match="block_size"):
        LMBatches(torch.arange(16), block_size=16, batch_size=2)


@pytest.mark.parametrize("n_tokens", [23, 21, 6])
def test_eval_windows_predict_every_token_exactly_once(n_tokens):
    ids = torch.arange(n_tokens)
    windows = list(iter_eval_windows(ids, block_size=5, batch_size=2))
    inputs = torch.cat([x.flatten() for x, _ in windows])
    targets = torch.cat([y.flatten() for _, y in windows])
    assert torch.equal(inputs, torch.arange(n_tokens - 1))
    assert torch.equal(targets, torch.arange(1, n_tokens))
    assert all(x.shape[1] <= 5 and x.shape[0] <= 2 for x, _ in windows)
    if n_tokens == 23:  # 22 targets: two batches of two full windows, then 2 leftover tokens
        assert [tuple(x.shape) for x, _ in windows] == [(2, 5), (2, 5), (1, 2)]


class Bigram(torch.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)

    def forward(self, x):
        return self.table(x)  # (B, T, V): the logits of the next token depend on this one only


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_lm_is_the_mean_next_token_loss_of_the_whole_split(training):
    torch.manual_seed(0)
    model = Bigram(vocab=7)
    ids = torch.randint(0, 7, (23,))
    log_p = F.log_softmax(model.table.weight.detach(), dim=-1)  # (V, V)
    by_hand = -log_p[ids[:-1], ids[1:]].mean().item()  # 22 predictions
    model.train(training)
    loss = evaluate_lm(model, ids, block_size=5, batch_size=2)
    assert abs(loss - by_hand) < 1e-6
    assert model.training is training
    assert torch.is_grad_enabled()
