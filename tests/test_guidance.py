"""Classifier-free guidance: the combination against its definition in scores, the special scales,
one batched forward equal to two separate ones, and the mapping from diffusers' scale."""

import torch

from fromscratch.diffusion.guidance import cfg_combine, from_diffusers_scale, guided


def toy_model(calls):
    """ε(x, t, c) = x·c_scale + t/1000, recording every batch it is called with."""

    def model(x, t, context):
        calls.append(x.shape[0])
        embeddings, mask = context
        scale = embeddings.mean(dim=(1, 2)).view(-1, 1)
        return x * scale + t.view(-1, 1) / 1000 + mask.sum(1, keepdim=True)
    return model


def test_combination_is_the_score_of_p_x_times_classifier_to_the_w():
    sigma, w = 0.7, 3.0
    eps_u, eps_c = torch.randn(5), torch.randn(5)
    score_u, score_c = -eps_u / sigma, -eps_c / sigma
    classifier_grad = score_c - score_u  # ∇log p(c | x) = ∇log p(x | c) − ∇log p(x)
    expected_eps = -sigma * (score_u + w * classifier_grad)
    assert torch.allclose(cfg_combine(eps_u, eps_c, w), expected_eps, atol=1e-6)
    assert torch.equal(cfg_combine(eps_u, eps_c, 0.0), eps_u)
    assert torch.allclose(cfg_combine(eps_u, eps_c, 1.0), eps_c, atol=1e-6)


def test_one_batched_forward_equals_two_separate_ones():
    calls = []
    model = toy_model(calls)
    x, t = torch.randn(3, 4), torch.tensor([5, 6, 7])
    cond = (torch.full((3, 2, 2), 2.0), torch.ones(3, 2))
    uncond = (torch.full((3, 2, 2), -1.0), torch.tensor([[1.0, 0.0]] * 3))
    out = guided(model, cond, uncond, 7.5)(x, t)
    assert calls == [6]  # one forward of 2B
    expected = cfg_combine(model(x, t, uncond), model(x, t, cond), 7.5)
    assert torch.allclose(out, expected, atol=1e-6)
    calls.clear()
    assert torch.allclose(guided(model, cond, uncond, 1.0)(x, t), model(x, t, cond))
    assert torch.allclose(guided(model, cond, uncond, 0.0)(x, t), model(x, t, uncond))
    assert calls == [3, 3, 3, 3]  # w = 1 and w = 0 run one half only


def test_diffusers_scale_mapping():
    assert from_diffusers_scale(7.5) == 7.5
    assert from_diffusers_scale(1.0) == from_diffusers_scale(0.0) == 1.0  # their "off"
