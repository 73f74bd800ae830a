"""UNet speed: our UNet against diffusers' UNet2DConditionModel, same config, same weights.

    python benchmarks/unet_step.py [--device cpu|cuda] [--batch 8] [--size 16] [--repeats 5]
                                   [--rounds 3] [--steps 20] [--sd] [--threads 1]

Two numbers, each side timed in the same process on identical weights (ours is loaded from the
folder diffusers saved) and identical inputs:
  - a training step: forward, ε-MSE loss, backward, AdamW update, on a batch of latents;
  - sampling: DDIM with classifier-free guidance (one doubled-batch forward per step), the time
    per image, our `samplers.ddim` + `guidance.guided` against diffusers' DDIMScheduler loop.
The sides take turns for --rounds rounds (on a shared machine the load drifts), the best time of
each is reported, and the outputs are checked equal first. --sd uses Stable Diffusion v1's UNet
config (GPU only: 860M parameters).
"""

import argparse
import platform
import tempfile
import time

import torch

CA, D, CU, U = "CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"
SMALL = dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
             cross_attention_dim=64, attention_head_dim=4, down_block_types=(D, CA, CA),
             up_block_types=(CU, CU, U))
SD_V1 = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, norm_num_groups=32,
             cross_attention_dim=768, attention_head_dim=8, down_block_types=(CA, CA, CA, D),
             up_block_types=(U, CU, CU, CU))


def models(config: dict, device: str):
    from diffusers import UNet2DConditionModel

    from fromscratch.stable_diffusion.unet import UNet

    torch.manual_seed(0)
    theirs = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, **config)
    with tempfile.TemporaryDirectory() as folder:
        theirs.save_pretrained(folder)
        ours = UNet.from_diffusers(folder)
    return ours.to(device), theirs.to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def train_step(model, forward, x, t, context):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = torch.randn_like(x)

    def step():
        loss = torch.nn.functional.mse_loss(forward(model, x, t, context), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def ours_forward(model, x, t, context):
    return model(x, t, context)


def theirs_forward(model, x, t, context):
    return model(x, t, encoder_hidden_states=context).sample


def sampling(side: str, model, x_T, cond, uncond, steps: int, w: float):
    from diffusers import DDIMScheduler

    from fromscratch.diffusion.guidance import guided
    from fromscratch.diffusion.samplers import ddim
    from fromscratch.diffusion.sde import DiscreteSchedule, scaled_linear_betas

    if side == "ours":
        schedule = DiscreteSchedule(scaled_linear_betas()).to(x_T.device)
        eps = guided(model, cond, uncond, w)
        return lambda: ddim(eps, x_T, schedule, steps)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=True)

    def run():
        scheduler.set_timesteps(steps)
        x, both = x_T, torch.cat([uncond, cond])
        for t in scheduler.timesteps:
            pred = model(torch.cat([x, x]), t, encoder_hidden_states=both).sample
            eps_u, eps_c = pred.chunk(2)
            x = scheduler.step(eps_u + w * (eps_c - eps_u), t, x).prev_sample
        return x

    return run


@torch.no_grad()
def check_equal(ours, theirs, x, t, context, samplers) -> float:
    err = (ours(x, t, context) - theirs(x, t, encoder_hidden_states=context).sample).abs().max()
    sample_err = (samplers["ours"]() - samplers["diffusers"]()).abs().max()
    return max(float(err), float(sample_err))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=16, help="latent height and width")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps when sampling")
    parser.add_argument("--sd", action="store_true", help="Stable Diffusion v1's UNet config")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: on a shared machine more threads mostly wait)")
    args = parser.parse_args()
    device = args.device
    torch.set_num_threads(args.threads)
    ours, theirs = models(SD_V1 if args.sd else SMALL, device)
    g = torch.Generator().manual_seed(1)
    width = theirs.config.cross_attention_dim
    x = torch.randn(args.batch, 4, args.size, args.size, generator=g).to(device)
    t = torch.randint(0, 1000, (args.batch,), generator=g).to(device)
    context = torch.randn(args.batch, 77, width, generator=g).to(device)
    cond, uncond = context[:1], torch.randn(1, 77, width, generator=g).to(device)
    x_T = x[:1]
    samplers = {"ours": sampling("ours", ours, x_T, cond, uncond, args.steps, 7.5),
                "diffusers": sampling("diffusers", theirs, x_T, cond, uncond, args.steps, 7.5)}
    max_diff = check_equal(ours, theirs, x, t, context, samplers)

    steps = {"ours": train_step(ours, ours_forward, x, t, context),
             "diffusers": train_step(theirs, theirs_forward, x, t, context)}
    train, sample = {"ours": [], "diffusers": []}, {"ours": [], "diffusers": []}
    for _ in range(args.rounds):
        for side in ("ours", "diffusers"):
            train[side].append(best_time(steps[side], device, args.repeats))
            with torch.no_grad():
                sample[side].append(best_time(samplers[side], device, max(1, args.repeats // 2)))
    tr = {side: min(v) for side, v in train.items()}
    sa = {side: min(v) for side, v in sample.items()}

    params = sum(p.numel() for p in ours.parameters())
    name = "SD v1" if args.sd else "small"
    print(f"Machine: {platform.machine()}, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads. UNet '{name}': {params:,} parameters; batch "
          f"{args.batch} of 4×{args.size}×{args.size} latents, 77 text tokens; best of "
          f"{args.repeats} × {args.rounds} rounds. Max |ours − diffusers| before timing "
          f"(outputs and samples): {max_diff:.1e}.")
    print()
    print("| UNet | ours | diffusers | speed ratio (diffusers time / ours) |")
    print("|---|---|---|---|")
    print(f"| training step (ms) | {1e3 * tr['ours']:.1f} | {1e3 * tr['diffusers']:.1f} | "
          f"{tr['diffusers'] / tr['ours']:.2f}× |")
    print(f"| sampling, DDIM {args.steps} steps with guidance (s per image) | {sa['ours']:.3f} "
          f"| {sa['diffusers']:.3f} | {sa['diffusers'] / sa['ours']:.2f}× |")


if __name__ == "__main__":
    main()
