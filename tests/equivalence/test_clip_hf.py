"""Our CLIP text model and tokenizer equal transformers' on the same weights and vocabulary.

The model: a random `CLIPTextModel` saved by transformers, read by ours; last hidden states and
the pooled end-of-text vector agree, under both pooling conventions (eos_token_id = 2, the legacy
"largest id" rule, and a real eos id, the "first eos" rule), with and without a padding mask.
The tokenizer: a small vocabulary and merges trained for the test, written as vocab.json +
merges.txt, read by both tokenizers; ids agree on a set of awkward texts.
"""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from fromscratch.stable_diffusion.text_encoder import CLIPTextModel  # noqa: E402
from fromscratch.tokenizers.clip import CLIPTokenizer  # noqa: E402

TOL = 1e-4
VOCAB = 40


def random_clip(tmp_path, eos_token_id: int, act="quick_gelu"):
    config = transformers.CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=12, hidden_act=act,
        eos_token_id=eos_token_id, bos_token_id=0, pad_token_id=1)
    torch.manual_seed(0)
    theirs = transformers.CLIPTextModel(config).eval()
    theirs.save_pretrained(tmp_path)
    return theirs


@pytest.mark.parametrize("eos_token_id,act", [(2, "quick_gelu"), (VOCAB - 1, "gelu")])
def test_clip_text_model_equals_transformers(tmp_path, eos_token_id, act):
    theirs = random_clip(tmp_path / "theirs", eos_token_id, act)
    ours = CLIPTextModel.from_pretrained(tmp_path / "theirs")
    end = VOCAB - 1
    ids = torch.tensor([[0, 5, 9, 12, end, end, end, end],  # end token padding after the text
                        [0, 7, end, 3, 3, 3, 3, 3]])  # another padding id after the end
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]])
    for attention_mask in (None, mask):
        with torch.no_grad():
            expected = theirs(ids, attention_mask=attention_mask)
            hidden, pooled = ours(ids, attention_mask=attention_mask)
        real = mask.bool() if attention_mask is not None else torch.ones_like(mask).bool()
        assert (hidden - expected.last_hidden_state)[real].abs().max().item() <= TOL
        assert (pooled - expected.pooler_output).abs().max().item() <= TOL
    assert torch.equal(pooled, hidden[torch.arange(2), torch.tensor([4, 2])])

    ours.save_pretrained(tmp_path / "ours")
    back = transformers.CLIPTextModel.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        again = back(ids).last_hidden_state
        assert (again - theirs(ids).last_hidden_state).abs().max().item() <= TOL


def tiny_vocabulary(folder):
    """Bytes as printable characters, word-final forms, a few merges, the two specials."""
    from fromscratch.tokenizers.bpe import BYTE_TO_UNICODE

    symbols = [BYTE_TO_UNICODE[b] for b in range(256)]
    merges = [("c", "a"), ("ca", "t</w>"), ("t", "h"), ("th", "e</w>"), ("a", "n"),
              ("an", "d</w>"), ("o", "n"), ("Ã", "©"), ("'", "s</w>")]
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n", "utf-8")
    return vocab


TEXTS = ["a cat", "The CAT and the cat's hat", "  spaced\tout\n\ntext  ", "café 1234 ok!?",
         "on-line: cation, \u00e9t\u00e9", "émoji 🐱 <|endoftext|> tail", ""]


def test_clip_tokenizer_equals_transformers(tmp_path):
    tiny_vocabulary(tmp_path)
    theirs = transformers.CLIPTokenizer(vocab=json.loads((tmp_path / "vocab.json").read_text()),
                                        merges=[tuple(line.split()) for line in
                                                (tmp_path / "merges.txt").read_text()
                                                .splitlines()[1:]])
    ours = CLIPTokenizer.from_pretrained(tmp_path)
    for text in TEXTS:
        assert ours.encode(text) == theirs(text)["input_ids"], text
    batch = theirs(TEXTS, padding="max_length", max_length=12, truncation=True,
                   return_tensors="pt")
    mine = ours(TEXTS, max_length=12)
    assert torch.equal(mine["input_ids"], batch["input_ids"])
    assert torch.equal(mine["attention_mask"], batch["attention_mask"])
    assert ours.decode(ours.encode("The cat and the cat's hat")) == "the cat and the cat 's hat"
