"""The music transformer: causal, its NLL the written-out Bernoulli formula, padding-free
evaluation, the within-step chain rule normalised, sampling from the stated distribution."""

import itertools
import math

import pytest
import torch

from fromscratch.beyond.music import (
    MusicConfig,
    MusicTransformer,
    evaluate_nll,
    plot_piano_roll,
)
from fromscratch.data.music import pad_rolls
from fromscratch.errors import UserError


def tiny_model(within_step=False, nade_hidden=0) -> MusicTransformer:
    torch.manual_seed(0)
    model = MusicTransformer(MusicConfig(block_size=20, n_layer=2, n_head=2, n_embd=16,
                                         dropout=0.0, within_step=within_step,
                                         nade_hidden=nade_hidden))
    with torch.no_grad():  # larger weights than the init, so that leaks would show
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def random_rolls(*lengths, seed=0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(t, 88, generator=gen) < 0.05).float() for t in lengths]


@pytest.mark.parametrize(("within_step", "nade_hidden"), [(False, 0), (True, 0), (True, 5)])
def test_a_step_never_sees_its_future(within_step, nade_hidden):
    model = tiny_model(within_step, nade_hidden)
    roll = random_rolls(12)[0][None]
    logits = model(roll)
    changed = roll.clone()
    changed[0, 6, 40] = 1 - changed[0, 6, 40]  # flip key 40 at step 6
    after = model(changed)
    assert torch.allclose(after[0, :6], logits[0, :6], atol=1e-6)  # earlier steps untouched
    assert not torch.allclose(after[0, 7], logits[0, 7], atol=1e-4)  # later steps see it
    # at step 6 itself: keys never see their own step, except keys above 40 when within_step
    assert torch.allclose(after[0, 6, :41], logits[0, 6, :41], atol=1e-6)
    assert torch.allclose(after[0, 6, 41:], logits[0, 6, 41:], atol=1e-6) != within_step


def test_loss_is_the_bernoulli_nll_summed_over_keys_and_averaged_over_steps():
    model = tiny_model()
    rolls = random_rolls(5, 9)
    padded, mask = pad_rolls(rolls)
    total, steps = 0.0, 0
    for roll in rolls:
        p = torch.sigmoid(model(roll[None])[0]).detach()  # (T, 88)
        log_likelihood = roll * torch.log(p) + (1 - roll) * torch.log(1 - p)
        total -= float(log_likelihood.sum())
        steps += len(roll)
    assert model.loss((padded, mask)).item() == pytest.approx(total / steps, rel=1e-5)
    assert evaluate_nll(model, rolls, batch_size=1) == pytest.approx(total / steps, rel=1e-5)
    assert evaluate_nll(model, rolls, batch_size=2) == pytest.approx(total / steps, rel=1e-5)


def test_an_untrained_model_that_says_one_half_costs_88_log_2_per_step():
    model = tiny_model()
    with torch.no_grad():
        model.w_out.weight.zero_()
        model.w_out.bias.zero_()
    assert evaluate_nll(model, random_rolls(4, 7)) == pytest.approx(88 * math.log(2), rel=1e-6)


def chord_model(nade_hidden=0) -> MusicTransformer:
    """Step 0's logits: 0 for keys 0-2 plus within-step terms, -30 for every other key."""
    model = tiny_model(within_step=True, nade_hidden=nade_hidden)
    with torch.no_grad():
        if nade_hidden:  # no NADE term on the keys above 2, whose probability stays e^-30
            model.nade_v[3:] = 0.0
        model.w_out.weight.zero_()
        model.w_out.bias.fill_(-30.0)
        model.w_out.bias[:3] = torch.tensor([0.5, -0.2, 0.1])
        model.within.zero_()
        model.within[1, 0], model.within[2, 0], model.within[2, 1] = 3.0, -3.0, 2.0
        model.within[0, 2] = 50.0  # above the diagonal: must be ignored
    return model


@pytest.mark.parametrize("nade_hidden", [0, 4])
@torch.no_grad()
def test_within_step_probabilities_sum_to_one(nade_hidden):
    model = chord_model(nade_hidden)
    total = 0.0
    for keys in itertools.product([0.0, 1.0], repeat=3):
        roll = torch.zeros(1, 1, 88)
        roll[0, 0, :3] = torch.tensor(keys)
        total += math.exp(-model.nll(roll, torch.ones(1, 1)).item())
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("nade_hidden", [0, 4])
def test_sampling_follows_the_models_distribution(nade_hidden):
    model = chord_model(nade_hidden)
    n = 3000
    samples = model.sample(1, num_samples=n, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (n, 1, 88) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert samples[:, 0, 3:].sum() == 0
    for keys in itertools.product([0.0, 1.0], repeat=3):
        roll = torch.zeros(1, 1, 88)
        roll[0, 0, :3] = torch.tensor(keys)
        p = math.exp(-model.nll(roll, torch.ones(1, 1)).item())
        frequency = float((samples[:, 0, :3] == torch.tensor(keys)).all(-1).float().mean())
        assert abs(frequency - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, keys


@torch.no_grad()
def test_nade_logits_in_one_pass_equal_the_written_out_chain_key_by_key():
    model = tiny_model(within_step=True, nade_hidden=5)
    roll = (torch.rand(1, 6, 88, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    states = model.context(roll)[0]  # (T, C)
    lower = torch.tril(model.within, diagonal=-1)
    expected = torch.empty(6, 88)
    for t in range(6):
        for k in range(88):  # a_tk = w_out + Σ_{j<k} U_kj v_tj + V_k · σ(c_t + Σ_{j<k} v_tj W_j)
            hidden = torch.sigmoid(model.nade_c(states[t]) + roll[0, t, :k] @ model.nade_w[:k])
            expected[t, k] = (model.w_out(states[t])[k] + roll[0, t] @ lower[k]
                              + hidden @ model.nade_v[k])
    assert torch.allclose(model(roll)[0], expected, atol=1e-5)


def test_nade_needs_the_within_step_chain():
    with pytest.raises(UserError, match="nade_hidden chains the keys of a step"):
        MusicConfig(nade_hidden=8)
    with pytest.raises(UserError, match="nade_hidden chains the keys of a step"):
        MusicConfig(within_step=True, nade_hidden=-1)


def test_sampling_is_seeded_and_checks_its_arguments():
    model = tiny_model()
    a = model.sample(10, num_samples=2, generator=torch.Generator().manual_seed(3))
    b = model.sample(10, num_samples=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (2, 10, 88)
    with pytest.raises(UserError, match="n_steps must be 1..19"):
        model.sample(20)
    with pytest.raises(UserError, match="temperature"):
        model.sample(3, temperature=0)


def test_save_load_round_trip_and_plot(tmp_path):
    model = tiny_model(within_step=True, nade_hidden=3)
    model.save_pretrained(tmp_path / "m")
    loaded = MusicTransformer.from_pretrained(tmp_path / "m")
    roll = random_rolls(8)[0][None]
    assert loaded.config == model.config and torch.equal(loaded(roll), model(roll))
    with pytest.raises(UserError, match="is not a fromscratch-audio model "
                                        r"\(its model_type is 'fromscratch-music'\)"):
        from fromscratch.beyond.audio import AudioClassifier

        AudioClassifier.from_pretrained(tmp_path / "m")
    plot_piano_roll(roll[0], tmp_path / "roll.png", title="random")
    assert (tmp_path / "roll.png").read_bytes()[:4] == b"\x89PNG"
