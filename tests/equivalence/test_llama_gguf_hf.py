"""The real SmolLM2-135M-Instruct from its 4-bit GGUF file: our reading and our Llama equal
transformers' GGUF load of the same file, weight for weight, in logits and greedy continuations."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from fromscratch.language.gguf import unpermute_rope_rows  # noqa: E402
from fromscratch.language.llama import Llama  # noqa: E402

# "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n" in
# SmolLM2's own token ids
PROMPT = torch.tensor(
    [[1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]]
)


@pytest.fixture(scope="module")
def ours(smollm2_gguf):
    return Llama.from_pretrained(smollm2_gguf)


@pytest.fixture(scope="module")
def theirs(smollm2_gguf):
    load = transformers.AutoModelForCausalLM.from_pretrained
    return load(smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def their_logits(theirs):
    with torch.no_grad():
        return theirs(PROMPT).logits  # (1, T, V)


def test_every_weight_is_the_same_number(ours, theirs):
    """Same blocks decoded, same rows, same names: bit for bit, all 272 tensors and lm_head."""
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert set(mine) == set(reference)
    different = [name for name in reference if not torch.equal(mine[name], reference[name])]
    assert different == []


def test_logits_match(ours, their_logits):
    with torch.no_grad():
        logits = ours(PROMPT)  # (1, T, V)
    assert (logits - their_logits).abs().max() < 2e-3


def test_greedy_continuations_match(ours, theirs):
    mine = ours.generate(PROMPT, max_new_tokens=8)
    reference = theirs.generate(PROMPT, max_new_tokens=8, do_sample=False)
    assert torch.equal(mine, reference)
    # "The capital of France is Paris.<|im_end|>"
    assert mine[0, PROMPT.shape[1] :].tolist() == [504, 3575, 282, 4649, 314, 7042, 30, 2]


def file_row_order(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The query/key rows as the file stores them: llama.cpp's order, not yet undone."""
    rows, columns = weight.shape
    halves = weight.reshape(n_heads, 2, rows // n_heads // 2, columns)  # (head, half, i, C)
    return halves.transpose(1, 2).reshape(rows, columns)


def test_without_undoing_llama_cpp_row_order_the_logits_diverge(ours, their_logits):
    """The same model with its query/key rows left as the file stores them."""
    state = dict(ours.state_dict())
    heads = {"q_proj": ours.config.num_attention_heads, "k_proj": ours.config.num_key_value_heads}
    for name in state:
        for projection, n_heads in heads.items():
            if name.endswith(f"self_attn.{projection}.weight"):
                state[name] = file_row_order(state[name], n_heads)
                assert torch.equal(
                    unpermute_rope_rows(state[name], n_heads), ours.state_dict()[name]
                )
    scrambled = Llama.from_tensors(ours.config, state, "the file's rows")
    with torch.no_grad():
        logits = scrambled(PROMPT)
    gap = (logits - their_logits).abs()[0]  # (T, V)
    # Rows permuted alike leave q · k alone, but RoPE then turns the wrong pairs of numbers
    assert gap[1:].mean() > 1.0
    assert gap[0].max() < 2e-3  # the first token attends to itself alone: nothing to turn wrong
