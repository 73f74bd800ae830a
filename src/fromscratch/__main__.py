"""`python -m fromscratch ...` (what `torchrun -m fromscratch` runs) is the `fromscratch` CLI."""

import sys

from .cli import main

sys.exit(main())
