"""Bad input, no traceback: each row of docs/bad_input.md, run through the CLI in-process.

Every row must end with exit code 2, one line on stderr that says what to do, and no change to
anything saved before (the trained run folder and every file the row prepared). Rows of other
tracks go in the same table: add a function `(ctx) -> (argv, expected words)` to ROWS.
"""

import hashlib
import json
import pickle
import shutil
from pathlib import Path
from pydoc_data.topics import topics

import pytest

from fromscratch.cli import main

TEXT = "".join(topics[k] for k in sorted(topics))[:8_000]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished tiny training run: checkpoints, model folder, tokenizer, log."""
    root = tmp_path_factory.mktemp("trained")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    code = main(["gpt", "train", "--data", str(corpus), "--out", str(root / "run"),
                 "--max-steps", "2", "--batch-size", "4"])
    assert code == 0
    return root


class Ctx:
    """What a row may use: the trained run and a scratch folder for damaged copies."""

    def __init__(self, trained: Path, scratch: Path):
        self.corpus, self.run, self.scratch = trained / "corpus.txt", trained / "run", scratch
        self.cleanups = []  # called after the row's command has run

    def data_file(self, name: str, data: bytes) -> str:
        path = self.scratch / name
        path.write_bytes(data)
        return str(path)

    def copy_of_run(self) -> Path:
        return Path(shutil.copytree(self.run, self.scratch / "copy"))

    def train(self, data: str, *more: str) -> list[str]:
        return ["gpt", "train", "--data", data, "--out", str(self.run), "--resume",
                "--max-steps", "3", "--batch-size", "4", *more]


class Exploit:
    """A pickle that, if unpickled, would create a file: proof that nothing unpickles it."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickled_weights(ctx: Ctx) -> list[str]:
    copy = ctx.copy_of_run()
    Exploit.marker = ctx.scratch / "pwned"
    (copy / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    return ["gpt", "sample", "--ckpt", str(copy)]


def pickle_only_folder(ctx: Ctx) -> list[str]:
    copy = ctx.copy_of_run()
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    return ["gpt", "sample", "--ckpt", str(copy)]


def truncated_weights(ctx: Ctx) -> list[str]:
    copy = ctx.copy_of_run()
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ["gpt", "sample", "--ckpt", str(copy)]


def truncated_training_checkpoints(ctx: Ctx) -> list[str]:
    copy = ctx.copy_of_run()
    for weights in copy.glob("checkpoints/step-*/model.safetensors"):
        weights.write_bytes(weights.read_bytes()[:1000])
    argv = ctx.train(str(ctx.corpus))
    argv[argv.index("--out") + 1] = str(copy)
    return argv


def another_models_config(ctx: Ctx) -> list[str]:
    copy = ctx.copy_of_run()
    bert = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
            "num_attention_heads": 12, "vocab_size": 30522}
    (copy / "config.json").write_text(json.dumps(bert))
    return ["gpt", "sample", "--ckpt", str(copy)]


def newer_checkpoint_format(ctx: Ctx) -> list[str]:
    copy = ctx.copy_of_run()
    for state_file in copy.glob("checkpoints/step-*/state.json"):
        state = json.loads(state_file.read_text())
        state_file.write_text(json.dumps({**state, "format": 99}))
    argv = ctx.train(str(ctx.corpus))
    argv[argv.index("--out") + 1] = str(copy)
    return argv


def dropping_server(ctx: Ctx, monkeypatch) -> list[str]:
    import http.server
    import threading

    class Drops(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"First Citizen:\n" * 100)  # then the connection closes

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drops)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ctx.cleanups.append(lambda: (server.shutdown(), server.server_close()))
    monkeypatch.setattr("fromscratch.data.text.SHAKESPEARE_URL",
                        f"http://127.0.0.1:{server.server_address[1]}/input.txt")
    monkeypatch.setattr("fromscratch.data.time.sleep", lambda seconds: None)  # no waiting
    monkeypatch.setenv("FROMSCRATCH_CACHE", str(ctx.scratch / "cache"))
    return ctx.train("shakespeare")


# (row id, what makes the bad input, words the one-line message must contain)
ROWS = [
    ("missing data file", lambda c: c.train(str(c.scratch / "nope.txt")), "no such file"),
    ("empty data file", lambda c: c.train(c.data_file("e.txt", b"")), "empty"),
    ("binary data file", lambda c: c.train(c.data_file("b.dat", bytes(range(256)) * 8)),
     "binary"),
    ("non-UTF-8 data file", lambda c: c.train(c.data_file("l.txt", "café ".encode("latin-1") * 99)),
     "re-save it as UTF-8"),
    ("a folder as data", lambda c: c.train(str(c.scratch)), "is a folder"),
    ("truncated model weights", truncated_weights, "damaged or incomplete"),
    ("truncated training checkpoints", truncated_training_checkpoints, "--overwrite"),
    ("checkpoint of another model (config)", another_models_config, "not a GPT"),
    ("checkpoint of another model (shapes)",
     lambda c: c.train(str(c.corpus), "--recipe", "nanogpt-cpu"), "same model settings"),
    ("checkpoint from a newer version", newer_checkpoint_format, "upgrade fromscratch"),
    ("a pickle instead of safetensors", pickled_weights, "damaged or incomplete"),
    ("only a pickle (pytorch_model.bin)", pickle_only_folder, "has no model.safetensors"),
    ("unknown recipe", lambda c: c.train(str(c.corpus), "--recipe", "huge"),
     "choose one of: demo, nanogpt-cpu"),
    ("negative steps", lambda c: c.train(str(c.corpus), "--max-steps", "-5"), "must be > 0"),
    ("zero batch (train)", lambda c: c.train(str(c.corpus), "--batch-size", "0"), "must be > 0"),
    ("zero batch (eval)", lambda c: ["gpt", "eval", "--ckpt", str(c.run), "--data",
                                     str(c.corpus), "--batch-size", "0"], "must be > 0"),
    ("temperature < 0", lambda c: ["gpt", "sample", "--ckpt", str(c.run), "--temperature",
                                   "-1"], "must be ≥ 0"),
    ("top-p = 0", lambda c: ["gpt", "sample", "--ckpt", str(c.run), "--top-p", "0"],
     "must be in (0, 1]"),
    ("top-p > 1", lambda c: ["gpt", "sample", "--ckpt", str(c.run), "--top-p", "1.5"],
     "must be in (0, 1]"),
    ("EMA decay ≥ 1", lambda c: c.train(str(c.corpus), "--ema", "1.5"), "must be in [0, 1)"),
    ("interrupted downloads (every attempt)", dropping_server, "try again later"),
]


def snapshot(*folders: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("make, expected", [row[1:] for row in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
        run_folder, tmp_path, capsys, monkeypatch, make, expected):
    ctx = Ctx(run_folder, tmp_path)
    argv = make(ctx, monkeypatch) if make is dropping_server else make(ctx)
    before = snapshot(run_folder, tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse rejects a value before any command runs
        code = exit_.code
    finally:
        for cleanup in ctx.cleanups:
            cleanup()
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and "\r" not in line]  # no progress bars
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert expected.lower() in err.lower(), err
    after = snapshot(run_folder, tmp_path)
    assert {p: after.get(p) for p in before} == before  # nothing saved before changed
    assert not [p for p in after.keys() - before.keys() if not p.name.startswith(".")]
    assert not (tmp_path / "pwned").exists()  # no pickle was ever loaded


def test_the_docs_table_lists_every_row():
    table = (Path(__file__).resolve().parents[1] / "docs" / "bad_input.md").read_text()
    for row_id, _, _ in ROWS:
        assert f"| {row_id} |" in table, row_id
