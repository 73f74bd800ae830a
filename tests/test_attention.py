"""attention.py against PyTorch: F.scaled_dot_product_attention and nn.MultiheadAttention.

Everything runs in float64 so the written-out path must agree with PyTorch to ~1e-12.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import (
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from fromscratch.errors import UserError

TOL = 1e-10  # float64
SHAPES = [  # (B, H, Tq, Tk, D)
    (1, 1, 1, 1, 4),
    (2, 3, 5, 5, 8),
    (2, 4, 3, 7, 16),  # fewer queries than keys, as with a KV cache
    (3, 2, 6, 2, 4),
]
MASK_CASES = ["none", "causal", "padding", "padding+causal", "random"]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def random_qkv(b, h, t_query, t_key, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, t_query, d, generator=g, dtype=torch.float64)
    k = torch.randn(b, h, t_key, d, generator=g, dtype=torch.float64)
    v = torch.randn(b, h, t_key, d + 1, generator=g, dtype=torch.float64)  # Dv != D on purpose
    return q, k, v


def random_lengths(b, t_key, seed=0):
    """(B, Tk) 1 = real / 0 = pad, right-padded, at least one real token per row."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t_key + 1, (b,), generator=g)
    return (torch.arange(t_key)[None, :] < lengths[:, None]).long()


def explicit_causal(t_query, t_key):
    """Written independently of causal_mask: lower triangle shifted right by Tk - Tq."""
    return torch.ones(t_query, t_key, dtype=torch.bool).tril(diagonal=t_key - t_query)


def mask_case(case, b, h, t_query, t_key, seed=0):
    """(our arguments, the explicit boolean mask PyTorch gets) for one masking case."""
    pad = padding_mask(random_lengths(b, t_key, seed))  # (B, 1, 1, Tk)
    if case == "none":
        return {}, None
    if case == "causal":
        return {"causal": True}, explicit_causal(t_query, t_key)
    if case == "padding":
        return {"mask": pad}, pad
    if case == "padding+causal":
        return {"mask": pad, "causal": True}, pad & explicit_causal(t_query, t_key)
    g = torch.Generator().manual_seed(seed)
    allowed = torch.rand(b, h, t_query, t_key, generator=g) < 0.5
    allowed[..., 0] = True  # every query sees at least one key
    return {"mask": allowed}, allowed


# --- masks ------------------------------------------------------------------------------------


def test_causal_mask_by_hand():
    assert causal_mask(2, 4).tolist() == [
        [True, True, True, False],
        [True, True, True, True],
    ]
    assert causal_mask(3, 3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    assert causal_mask(1, 5).tolist() == [[True] * 5]  # one new token sees the whole cache


@pytest.mark.parametrize("t_query,t_key", [(1, 1), (4, 4), (2, 6), (5, 9)])
def test_causal_mask_is_shifted_lower_triangle(t_query, t_key):
    assert torch.equal(causal_mask(t_query, t_key), explicit_causal(t_query, t_key))


def test_padding_mask():
    attention_mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = [[[[True, True, False]]], [[[True, False, False]]]]
    for given in (attention_mask, attention_mask.bool()):
        mask = padding_mask(given)
        assert mask.dtype == torch.bool and mask.shape == (2, 1, 1, 3)
        assert mask.tolist() == expected
    with pytest.raises(ValueError, match="batch, keys"):
        padding_mask(torch.tensor([1, 1, 0]))


# --- scaled dot-product attention ------------------------------------------------------------


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fast", [False, True])
def test_sdpa_matches_torch(shape, case, fast):
    q, k, v = random_qkv(*shape)
    ours_kwargs, torch_mask = mask_case(case, shape[0], shape[1], shape[2], shape[3])
    ours = scaled_dot_product_attention(q, k, v, fast=fast, **ours_kwargs)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=torch_mask)
    assert ours.shape == reference.shape
    assert max_diff(ours, reference) <= TOL


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_equals_written_out(shape, case):
    q, k, v = random_qkv(*shape, seed=1)
    ours_kwargs, _ = mask_case(case, shape[0], shape[1], shape[2], shape[3], seed=1)
    written = scaled_dot_product_attention(q, k, v, **ours_kwargs)
    fast = scaled_dot_product_attention(q, k, v, fast=True, **ours_kwargs)
    assert max_diff(written, fast) <= TOL


def test_sdpa_float32_within_1e5():
    q, k, v = (x.float() for x in random_qkv(2, 4, 8, 8, 16))
    ours = scaled_dot_product_attention(q, k, v, causal=True)
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert max_diff(ours, reference) <= 1e-5


@pytest.mark.parametrize("case", MASK_CASES)
def test_attention_weights_rows_sum_to_one_and_zero_where_masked(case):
    b, h, t_query, t_key, d = 2, 3, 4, 6, 8
    q, k, v = random_qkv(b, h, t_query, t_key, d)
    ours_kwargs, allowed = mask_case(case, b, h, t_query, t_key)
    weights = attention_weights(q, k, **ours_kwargs)
    assert weights.shape == (b, h, t_query, t_key)
    assert max_diff(weights.sum(dim=-1), torch.ones(b, h, t_query, dtype=q.dtype)) <= TOL
    if allowed is not None:
        assert (weights.masked_select(~allowed.expand_as(weights)) == 0).all()
    # the written-out attention is exactly these weights applied to V
    out = scaled_dot_product_attention(q, k, v, **ours_kwargs)
    assert max_diff(out, weights @ v) <= TOL


def test_causal_output_ignores_future_tokens():
    q, k, v = random_qkv(2, 2, 6, 6, 4)
    out = scaled_dot_product_attention(q, k, v, causal=True)
    for t in range(5):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, t + 1 :] += 10.0
        v2[:, :, t + 1 :] -= 10.0
        out2 = scaled_dot_product_attention(q, k2, v2, causal=True)
        assert max_diff(out[:, :, : t + 1], out2[:, :, : t + 1]) <= TOL
        assert max_diff(out[:, :, t + 1 :], out2[:, :, t + 1 :]) > 1.0  # the future did change


@pytest.mark.parametrize("fast", [False, True])
def test_fully_masked_query_gives_zero_not_nan(fast):
    q, k, v = random_qkv(1, 2, 3, 4, 8)
    q.requires_grad_(True)
    allowed = torch.tensor(
        [
            [False, False, False, False],  # query 0 may see nothing
            [True, False, True, False],
            [True, True, True, True],
        ]
    )
    out = scaled_dot_product_attention(q, k, v, mask=allowed, fast=fast)
    assert (out[..., 0, :] == 0).all()
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    assert max_diff(out[..., 1:, :], reference[..., 1:, :]) <= TOL
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    assert (attention_weights(q, k, mask=allowed)[..., 0, :] == 0).all()


def test_sdpa_dropout_drops_weights_reproducibly():
    q, k, v = random_qkv(2, 2, 5, 5, 4)
    p = 0.3
    torch.manual_seed(0)
    out = scaled_dot_product_attention(q, k, v, dropout_p=p)
    torch.manual_seed(0)
    dropped = F.dropout(attention_weights(q, k), p=p)  # the same random draw
    assert max_diff(out, dropped @ v) <= TOL
    # each weight is either dropped or scaled up by 1 / (1 - p), so its expectation is unchanged
    weights = attention_weights(q, k)
    kept = dropped != 0
    assert 0 < kept.sum() < kept.numel()
    assert max_diff(dropped[kept], weights[kept] / (1 - p)) <= TOL
    assert max_diff(out, scaled_dot_product_attention(q, k, v)) > 1e-3


# --- multi-head attention vs nn.MultiheadAttention -------------------------------------------


def make_pair(
    embed_dim=12, num_heads=3, *, kdim=None, vdim=None, bias=True, dropout=0.0, fast=False
):
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(
        embed_dim, num_heads, kdim=kdim, vdim=vdim, bias=bias, dropout=dropout, batch_first=True
    )
    if bias:  # PyTorch starts its biases at 0, which would hide a bias mix-up
        nn.init.normal_(reference.in_proj_bias)
        nn.init.normal_(reference.out_proj.bias)
    ours = MultiHeadAttention(
        embed_dim, num_heads, kdim=kdim, vdim=vdim, bias=bias, dropout=dropout, fast=fast
    )
    ours.load_torch_weights(reference)
    return ours.double().eval(), reference.double().eval()


def random_tokens(b, t, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, c, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fast", [False, True])
def test_mha_self_attention(fast, bias):
    ours, reference = make_pair(bias=bias, fast=fast)
    x = random_tokens(2, 5, 12)
    expected, _ = reference(x, x, x, need_weights=False)
    assert max_diff(ours(x), expected) <= TOL


@pytest.mark.parametrize("fast", [False, True])
def test_mha_causal(fast):
    ours, reference = make_pair(fast=fast)
    x = random_tokens(2, 6, 12)
    blocked = ~causal_mask(6, 6)  # PyTorch's bool attn_mask is True where attention is blocked
    expected, _ = reference(x, x, x, attn_mask=blocked, need_weights=False)
    assert max_diff(ours(x, causal=True), expected) <= TOL
    assert max_diff(ours(x, mask=causal_mask(6, 6)), expected) <= TOL


@pytest.mark.parametrize("fast", [False, True])
def test_mha_key_padding_mask(fast):
    ours, reference = make_pair(fast=fast)
    x = random_tokens(3, 5, 12)
    is_pad = random_lengths(3, 5, seed=2) == 0  # (B, Tk), True at PAD
    expected, _ = reference(x, x, x, key_padding_mask=is_pad, need_weights=False)
    assert max_diff(ours(x, key_padding_mask=is_pad), expected) <= TOL
    # padding plus causal
    blocked = ~causal_mask(5, 5)
    expected, _ = reference(x, x, x, key_padding_mask=is_pad, attn_mask=blocked)
    assert max_diff(ours(x, key_padding_mask=is_pad, causal=True), expected) <= TOL


@pytest.mark.parametrize("fast", [False, True])
def test_mha_cross_attention_with_other_widths(fast):
    ours, reference = make_pair(kdim=7, vdim=5, fast=fast)
    query = random_tokens(2, 4, 12, seed=1)
    key = random_tokens(2, 9, 7, seed=2)
    value = random_tokens(2, 9, 5, seed=3)
    is_pad = random_lengths(2, 9, seed=4) == 0
    expected, _ = reference(query, key, value, key_padding_mask=is_pad, need_weights=False)
    out = ours(query, key, value, key_padding_mask=is_pad)
    assert out.shape == (2, 4, 12)
    assert max_diff(out, expected) <= TOL


def test_mha_cross_attention_same_width_value_defaults_to_key():
    ours, reference = make_pair()
    query, memory = random_tokens(2, 3, 12, seed=1), random_tokens(2, 8, 12, seed=2)
    expected, _ = reference(query, memory, memory, need_weights=False)
    assert max_diff(ours(query, memory), expected) <= TOL


def test_mha_weights_per_head():
    ours, reference = make_pair()
    x = random_tokens(2, 5, 12)
    is_pad = random_lengths(2, 5, seed=3) == 0
    blocked = ~causal_mask(5, 5)
    expected_out, expected_weights = reference(
        x, x, x, key_padding_mask=is_pad, attn_mask=blocked, average_attn_weights=False
    )
    out, weights = ours(x, key_padding_mask=is_pad, causal=True, need_weights=True)
    assert weights.shape == (2, 3, 5, 5)  # (B, H, Tq, Tk)
    assert max_diff(weights, expected_weights) <= TOL
    assert max_diff(out, expected_out) <= TOL
    assert max_diff(weights.sum(dim=-1), torch.ones(2, 3, 5, dtype=x.dtype)) <= TOL
    assert (weights[is_pad[:, None, None, :].expand_as(weights)] == 0).all()


@pytest.mark.parametrize("fast", [False, True])
def test_mha_causal_output_ignores_future_tokens(fast):
    ours, _ = make_pair(fast=fast)
    x = random_tokens(1, 6, 12)
    out = ours(x, causal=True)
    for t in range(5):
        x2 = x.clone()
        x2[:, t + 1 :] = random_tokens(1, 5 - t, 12, seed=t + 10)
        out2 = ours(x2, causal=True)
        assert max_diff(out[:, : t + 1], out2[:, : t + 1]) <= TOL
        assert max_diff(out[:, t + 1 :], out2[:, t + 1 :]) > 1e-3


@pytest.mark.parametrize("fast", [False, True])
def test_mha_all_padding_row_gives_out_proj_bias(fast):
    ours, reference = make_pair(fast=fast)
    x = random_tokens(2, 4, 12)
    is_pad = torch.tensor([[True] * 4, [False, False, True, True]])  # sample 0 is all padding
    out = ours(x, key_padding_mask=is_pad)
    # attention output is 0, so what is left is the output projection's bias
    assert max_diff(out[0], ours.out_proj.bias.expand(4, 12)) == 0
    # PyTorch gives NaN or 0 for sample 0 depending on its code path; compare the other sample
    expected, _ = reference(x, x, x, key_padding_mask=is_pad, need_weights=False)
    assert max_diff(out[1], expected[1]) <= TOL


def test_mha_dropout():
    ours, reference = make_pair(dropout=0.5)
    x = random_tokens(2, 5, 12)
    # eval: dropout has no effect
    expected, _ = reference(x, x, x, need_weights=False)
    assert max_diff(ours(x), expected) <= TOL
    # training: random, but the same for the same seed
    ours.train()
    torch.manual_seed(1)
    first = ours(x)
    torch.manual_seed(1)
    again = ours(x)
    torch.manual_seed(2)
    other = ours(x)
    assert max_diff(first, again) == 0
    assert max_diff(first, other) > 1e-3
    assert max_diff(first, expected) > 1e-3
    # the weights it returns are the ones before dropout
    _, weights = ours(x, need_weights=True)
    assert max_diff(weights.sum(dim=-1), torch.ones(2, 3, 5, dtype=x.dtype)) <= TOL


def test_mha_rejects_bad_input():
    with pytest.raises(UserError, match="divisible"):
        MultiHeadAttention(10, 3)
    ours, _ = make_pair()
    x = random_tokens(1, 3, 12)
    with pytest.raises(ValueError, match="attention_mask == 0"):
        ours(x, key_padding_mask=torch.tensor([[1, 1, 0]]))
    with pytest.raises(ValueError, match="batch-first"):
        ours(x[0])
    with pytest.raises(ValueError, match=r"\(C, H, kdim, vdim, bias\)"):
        MultiHeadAttention(12, 3, kdim=7).load_torch_weights(nn.MultiheadAttention(12, 3))
    with pytest.raises(ValueError, match=r"\(C, H, kdim, vdim, bias\)"):
        MultiHeadAttention(12, 3, bias=False).load_torch_weights(nn.MultiheadAttention(12, 3))
