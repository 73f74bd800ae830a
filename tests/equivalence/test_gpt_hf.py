"""Our GPT = Hugging Face's GPT2LMHeadModel: same logits, loss, gradients and generated tokens.

Weights travel through files in both directions (HF save_pretrained -> our from_pretrained and
ours -> HF), and Hub names load offline from a Hugging Face cache folder.
"""

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
import huggingface_hub.constants  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.generation.logits_process import (  # noqa: E402
    MinPLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from fromscratch.errors import UserError  # noqa: E402
from fromscratch.language.gpt import (  # noqa: E402
    GPT,
    GPTConfig,
    min_p_filter,
    top_k_filter,
    top_p_filter,
)

CONFIGS = [  # (vocab_size, block_size, n_layer, n_head, n_embd)
    (100, 16, 2, 4, 32),
    (1000, 64, 2, 4, 64),
    (257, 32, 3, 2, 48),
]


def random_hf_model(vocab, block, n_layer, n_head, n_embd, seed=0) -> GPT2LMHeadModel:
    """A HF GPT-2 whose every weight is random: biases and LayerNorm gains included."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=block,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):  # LayerNorm gains near 1
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif ".wte." in name:  # larger token embeddings: logits of a few units
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(0.05 * torch.randn_like(p))
    return model


def random_ids(batch, length, vocab, seed=1):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("dims", CONFIGS)
def test_hf_checkpoint_loads_with_same_logits(tmp_path, dims):
    vocab, block = dims[0], dims[1]
    hf = random_hf_model(*dims)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    assert ours.lm_head.weight is ours.transformer.wte.weight
    idx = random_ids(3, block, vocab)
    with torch.no_grad():
        theirs = hf(idx).logits  # (B, T, V)
        assert theirs.std().item() > 1.0  # the weights are not near zero: a real test
        assert max_diff(ours(idx), theirs) <= 1e-4
        assert max_diff(ours(idx, fast=False), theirs) <= 1e-4


@pytest.mark.parametrize("dims", CONFIGS)
@pytest.mark.parametrize("bias", [True, False])
def test_our_checkpoint_loads_in_transformers(tmp_path, dims, bias):
    vocab, block, n_layer, n_head, n_embd = dims
    torch.manual_seed(0)
    config = GPTConfig(vocab, block, n_layer, n_head, n_embd, bias=bias)
    ours = GPT(config).eval()
    with torch.no_grad():  # random weights well away from the init
        for p in ours.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours.save_pretrained(tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    idx = random_ids(2, block, vocab)
    with torch.no_grad():
        assert max_diff(hf(idx).logits, ours(idx)) <= 1e-4


def test_loss_and_gradients_match(tmp_path):
    hf = random_hf_model(300, 32, 2, 4, 32)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    idx = random_ids(4, 32, 300)
    hf_loss = hf(idx, labels=idx).loss  # HF shifts the labels by one inside
    our_loss = ours.loss((idx[:, :-1], idx[:, 1:]))
    assert abs(hf_loss.item() - our_loss.item()) < 1e-5
    hf_loss.backward()
    our_loss.backward()
    hf_block, our_block = hf.transformer.h[1], ours.transformer.h[1]
    # Conv1D weights are (in, out): transpose to compare with nn.Linear
    assert max_diff(hf_block.attn.c_attn.weight.grad.t(), our_block.attn.c_attn.weight.grad) < 1e-5
    assert max_diff(hf_block.mlp.c_fc.bias.grad, our_block.mlp.c_fc.bias.grad) < 1e-5
    wte_grad = hf.transformer.wte.weight.grad  # embedding + tied output layer
    assert max_diff(wte_grad, ours.transformer.wte.weight.grad) < 1e-5


@pytest.mark.parametrize("dims", CONFIGS)
def test_greedy_generation_matches_hf(tmp_path, dims):
    vocab, block = dims[0], dims[1]
    hf = random_hf_model(*dims)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    prompt = random_ids(2, 4, vocab)
    new = min(block - 4, 28)  # up to the full context for the smaller blocks
    theirs = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(ours.generate(prompt, new, temperature=0), theirs)


@pytest.mark.parametrize("settings", [dict(temperature=0.8, top_k=40, top_p=0.9),
                                      dict(temperature=1.0, top_p=0.95, min_p=0.05)])
def test_sampling_matches_hf_with_the_same_seed(tmp_path, settings):
    hf = random_hf_model(300, 32, 2, 4, 32)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    prompt = random_ids(3, 4, 300)
    torch.manual_seed(7)  # both draw with torch.multinomial from the global generator
    theirs = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=20,
        min_new_tokens=20,
        do_sample=True,
        pad_token_id=0,
        **settings,
    )
    torch.manual_seed(7)
    assert torch.equal(ours.generate(prompt, 20, **settings), theirs)


def test_filters_match_hf_warpers():
    logits = torch.randn(8, 500, generator=torch.Generator().manual_seed(0)) * 3
    for p in (0.1, 0.5, 0.9, 0.99):
        theirs = TopPLogitsWarper(top_p=p)(None, logits.clone())
        assert torch.equal(top_p_filter(logits, p), theirs)
    logits[0, :5] = 20.0  # ties at the top: top-k keeps all tied logits, as HF does
    for k in (1, 5, 50):
        theirs = TopKLogitsWarper(top_k=k)(None, logits.clone())
        assert torch.equal(top_k_filter(logits, k), theirs)
    assert torch.isfinite(top_k_filter(logits, 2)[0]).sum().item() == 5
    for min_p in (0.0, 0.05, 0.3, 1.0):
        theirs = MinPLogitsWarper(min_p=min_p)(None, logits.clone())
        assert torch.equal(min_p_filter(logits, min_p), theirs)


# ---------------------------------------------------------------------------------------------
# Hub names, offline, from a Hugging Face cache folder
# ---------------------------------------------------------------------------------------------
def fake_hub_cache(cache: Path, repo_id: str, source: Path) -> None:
    """Lay out `source`'s two files the way huggingface_hub caches a download of `repo_id`."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((source / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)


@pytest.fixture
def offline(monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE once, at import: patch its constants.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_hub_name_loads_offline_from_cache(tmp_path, offline, monkeypatch):
    hf = random_hf_model(100, 16, 2, 4, 32)
    hf.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "cache"
    fake_hub_cache(cache, "openai-community/gpt2-tiny", tmp_path / "saved")
    fake_hub_cache(cache, "tiny-gpt2", tmp_path / "saved")
    idx = random_ids(2, 16, 100)
    with torch.no_grad():
        expected = hf(idx).logits
        by_org_name = GPT.from_pretrained("openai-community/gpt2-tiny", cache_dir=cache)
        assert max_diff(by_org_name(idx), expected) <= 1e-4
        # the default cache (what HF_HUB_CACHE sets) instead of cache_dir
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        assert max_diff(GPT.from_pretrained("tiny-gpt2")(idx), expected) <= 1e-4
    with pytest.raises(UserError, match="'not-cached-gpt2' is not a folder"):
        GPT.from_pretrained("not-cached-gpt2", cache_dir=cache)
