"""Text encoders: our BERT as the contextual encoder (equal to BertModel run by hand, padding
masked, batch-independent), and the CLIP tokenizer's contract (start/end tokens, padding to 77,
truncation keeping the end token, bad folders)."""

import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.language.bert import BertConfig, BertModel
from fromscratch.stable_diffusion.text_encoder import BertTextEncoder, CLIPTextConfig, CLIPTextModel
from fromscratch.tokenizers import WordPieceTokenizer
from fromscratch.tokenizers.clip import CLIPTokenizer

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "red", "blue", "on"]


def tiny_bert_encoder(max_length=8):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16)
    return BertTextEncoder(BertModel(config).eval(), WordPieceTokenizer(WORDS), max_length)


def test_bert_encoder_returns_bert_states_and_mask():
    encoder = tiny_bert_encoder()
    with torch.no_grad():
        hidden, mask = encoder.encode(["a red cat", ""])
        ids = torch.tensor([[2, 5, 8, 6, 3]])
        alone = encoder.bert(ids)  # the first prompt on its own, no padding at all
    assert hidden.shape == (2, 8, 16) and mask.tolist()[1] == [1, 1, 0, 0, 0, 0, 0, 0]
    assert mask[0].sum() == 5
    assert torch.allclose(hidden[0, :5], alone[0], atol=1e-5)  # padding changed nothing


def test_bert_encoder_truncates_to_max_length():
    encoder = tiny_bert_encoder(max_length=4)
    with torch.no_grad():
        hidden, mask = encoder.encode(["a red cat on a blue dog"])
    assert hidden.shape == (1, 4, 16) and mask.tolist() == [[1, 1, 1, 1]]


def test_clip_pooled_is_the_end_token_and_causal():
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=20, hidden_size=8, intermediate_size=16,
                            num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8,
                            eos_token_id=19)
    model = CLIPTextModel(config).eval()
    ids = torch.tensor([[18, 4, 5, 19, 19, 19]])
    changed = torch.tensor([[18, 4, 5, 19, 7, 7]])  # different tokens after the end
    with torch.no_grad():
        hidden, pooled = model(ids)
        hidden2, pooled2 = model(changed)
    assert torch.equal(pooled, hidden[:, 3])
    assert torch.allclose(hidden[:, :4], hidden2[:, :4], atol=1e-6)  # no token sees the future
    assert torch.allclose(pooled, pooled2, atol=1e-6)


def vocab():
    from fromscratch.tokenizers.bpe import BYTE_TO_UNICODE

    tokens = ["<|startoftext|>", "<|endoftext|>"] + [c + "</w>" for c in BYTE_TO_UNICODE.values()]
    return {t: i for i, t in enumerate(tokens + list(BYTE_TO_UNICODE.values()))}


def test_clip_tokenizer_pads_to_77_and_keeps_the_end_token():
    tok = CLIPTokenizer(vocab(), [])
    batch = tok(["ab", "x" * 200])
    assert batch["input_ids"].shape == (2, 77)
    a, b_end, start, end = tok.vocab["a"], tok.vocab["b</w>"], tok.start_id, tok.end_id
    assert batch["input_ids"][0, :4].tolist() == [start, a, b_end, end]
    assert batch["input_ids"][0, 4:].eq(tok.pad_id).all()
    assert batch["input_ids"][1, -1] == end and batch["attention_mask"][1].all()


def test_clip_tokenizer_round_trips_through_files(tmp_path):
    words = vocab()
    words["ab</w>"] = len(words)
    tok = CLIPTokenizer(words, [("a", "b</w>")], model_max_length=10)
    tok.save(tmp_path)
    back = CLIPTokenizer.from_pretrained(tmp_path)
    assert back.encode("ab ba") == tok.encode("ab ba") == [0, words["ab</w>"], words["b"],
                                                           words["a</w>"], 1]
    assert back.model_max_length == 10 and back.decode(back.encode("ab ba")) == "ab ba"


def test_bad_tokenizer_folder(tmp_path):
    with pytest.raises(UserError, match="no vocab.json"):
        CLIPTokenizer.from_pretrained(tmp_path)
    with pytest.raises(UserError, match="no '<|startoftext|>'"):
        CLIPTokenizer({"<|endoftext|>": 0}, [])
