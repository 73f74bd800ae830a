"""Training any model: one loop, and what lets it survive and scale.

    loop.py         the training loop: batch -> loss -> backward -> clip -> step (`train`)
    checkpoint.py   the whole training state saved atomically and resumed exactly
    distributed.py  data-parallel training under torchrun, and ZeRO-sharded optimizer state
    ema.py          an exponential moving average of the weights
    plots.py        loss curves
    recipes.py      a track's named settings (`Recipe`), chosen with `--recipe NAME`
"""
