"""The seed of a training step's randomness, from (seed, step, micro-batch).

Everything random in micro-batch m of step k is drawn from generators seeded by
`micro_batch_seed(seed, k, m, draws)`, so a step's draws depend on its numbers alone, and a run
resumed at step k, or split over several processes, draws exactly what one whole run draws.
Two sets of draws share (seed, k, m), each with its own seed:

    LOSS    inside `model.loss`: dropout masks, diffusion noise (training/loop.py seeds torch's
            generator with it before each micro-batch)
    BATCH   choosing the batch: rows, windows, augmentations (every batch source, data/text.py,
            data/images.py, ..., seeds its own generator with it)

With one seed for both, the noise a diffusion loss adds would be the very numbers that drew the
data points, and the model would learn that coincidence instead of the data.

numpy's SeedSequence mixes the numbers by a hash: nearby inputs such as (1337, 3, 1) and
(1337, 3, 2) give unrelated seeds, and no two steps of two runs share one. A linear mix such as
seed · 1000003 + step would give run 0 at step 1000003 the stream of run 1 at step 0.

    generator = torch.Generator().manual_seed(micro_batch_seed(seed, step, micro, BATCH))
"""

import numpy as np

LOSS = 0  # the draws inside the loss
BATCH = 1  # the draws that choose a batch


def micro_batch_seed(seed: int, step: int, micro: int, draws: int) -> int:
    """The seed, in [0, 2⁶³), of the `draws` (LOSS or BATCH) of micro-batch `micro` of step
    `step` in a run seeded `seed`."""
    mixed = np.random.SeedSequence([seed, step, micro, draws]).generate_state(1, np.uint64)[0]
    return int(mixed >> 1)
