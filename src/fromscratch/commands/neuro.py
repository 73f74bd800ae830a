"""`fromscratch neuro simulate|train|eval`: transformers on neural population spiking.

    fromscratch neuro simulate --out data.npz [--trials 250 --neurons 50 --bins 100 --seed 0]
    fromscratch neuro train --data data.npz --out DIR [--heldout 10 --valid-trials 50 ...]
    fromscratch neuro eval  --ckpt DIR --data data.npz [--valid-trials 50]

A data file is an .npz with "spikes" (trials, time bins, neurons) of counts; `simulate` also
stores the true "rates" and "latents", which `eval` scores the inferred rates against. The last
`--valid-trials` trials are never trained on; the last `--heldout` neurons are never an input.
"""

from pathlib import Path

from ..errors import UserError
from .common import positive_float, positive_int


def _load(path):
    """(spikes, true rates or None) from an .npz/.npy file."""
    import numpy as np
    import torch

    from ..neuro.io import load_counts

    spikes = load_counts(path)
    rates = None
    if Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "rates" in archive.files:
                rates = torch.from_numpy(archive["rates"]).float()
                if rates.shape != spikes.shape:
                    raise UserError(f"{path}: rates {tuple(rates.shape)} and spikes "
                                    f"{tuple(spikes.shape)} differ in shape")
    return spikes, rates


def _split(spikes, valid_trials: int):
    if not 0 < valid_trials < len(spikes):
        raise UserError(f"--valid-trials must be between 1 and {len(spikes) - 1} "
                        f"(the data has {len(spikes)} trials)")
    return spikes[:-valid_trials], spikes[-valid_trials:]


def cmd_simulate(args) -> None:
    import io

    import numpy as np

    from ..checkpoint import atomic_write_bytes
    from ..neuro.simulate import simulate_lorenz_population

    data = simulate_lorenz_population(n_trials=args.trials, n_neurons=args.neurons,
                                      n_bins=args.bins, bin_size=args.bin_size, seed=args.seed)
    buffer = io.BytesIO()
    np.savez(buffer, spikes=data.spikes.numpy().astype(np.int32), rates=data.rates.numpy(),
             latents=data.latents.numpy(), bin_size=np.array(data.bin_size))
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"{args.trials} trials × {args.bins} bins × {args.neurons} neurons, "
          f"{data.spikes.sum():.0f} spikes, mean rate {data.rates_hz().mean():.1f} Hz "
          f"-> {args.out}")


def cmd_train(args) -> None:
    from ..neuro.metrics import bits_per_spike
    from ..neuro.ndt import train_ndt

    spikes, _ = _load(args.data)
    train_set, valid_set = _split(spikes, args.valid_trials)
    n_neurons = spikes.shape[2]
    if not 0 < args.heldout < n_neurons:
        raise UserError(f"--heldout must be between 1 and {n_neurons - 1} "
                        f"(the data has {n_neurons} neurons)")
    print(f"training an NDT on {len(train_set)} trials ({n_neurons - args.heldout} held-in, "
          f"{args.heldout} held-out neurons); {len(valid_set)} validation trials")
    model, result = train_ndt(train_set, args.heldout, valid=valid_set, out_dir=Path(args.out),
                              max_steps=args.max_steps, max_time=args.max_time, seed=args.seed)
    model.save_pretrained(args.out)
    rates = model.infer_rates(valid_set)[:, :, -args.heldout:]
    print(f"stopped by {result.stopped_by} at step {result.step}; validation co-smoothing "
          f"{bits_per_spike(rates, valid_set[:, :, -args.heldout:]):.4f} bits/spike")
    print(f"model (config.json, model.safetensors), log.jsonl and loss.png in {args.out}")


def cmd_eval(args) -> None:
    from ..neuro.metrics import bits_per_spike, r_squared
    from ..neuro.ndt import NDT

    model = NDT.from_pretrained(args.ckpt)
    spikes, true_rates = _load(args.data)
    if spikes.shape[2] != model.config.n_neurons:
        raise UserError(f"{args.data} has {spikes.shape[2]} neurons; the model was trained on "
                        f"{model.config.n_neurons}")
    _, valid_set = _split(spikes, args.valid_trials)
    rates = model.infer_rates(valid_set)
    n_out = model.config.n_heldout
    print(f"co-smoothing (held-out neurons): "
          f"{bits_per_spike(rates[:, :, -n_out:], valid_set[:, :, -n_out:]):.4f} bits/spike")
    if true_rates is not None:
        print(f"R² of inferred vs true rates: {r_squared(rates, true_rates[-len(valid_set):]):.4f}")


def register(commands) -> None:
    neuro = commands.add_parser("neuro", help="Neural Data Transformer on population spiking")
    verbs = neuro.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("simulate", help="Lorenz-driven Poisson spiking, true rates kept")
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--trials", type=positive_int, default=250)
    p.add_argument("--neurons", type=positive_int, default=50)
    p.add_argument("--bins", type=positive_int, default=100)
    p.add_argument("--bin-size", type=positive_float, default=0.01, help="seconds")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)

    p = verbs.add_parser("train", help="train an NDT; co-smoothing on the validation trials")
    p.add_argument("--data", required=True, help=".npz with 'spikes' (trials, bins, neurons)")
    p.add_argument("--out", required=True, help="output folder (a loadable model folder)")
    p.add_argument("--heldout", type=positive_int, default=10, help="last neurons held out")
    p.add_argument("--valid-trials", type=positive_int, default=50)
    p.add_argument("--max-steps", type=positive_int)
    p.add_argument("--max-time", type=positive_float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("eval", help="co-smoothing bits/spike (and R² against true rates)")
    p.add_argument("--ckpt", required=True, help="a folder written by `fromscratch neuro train`")
    p.add_argument("--data", required=True)
    p.add_argument("--valid-trials", type=positive_int, default=50)
    p.set_defaults(func=cmd_eval)
