"""`python -m fromscratch ...` (what `torchrun -m fromscratch` runs) is the `fromscratch` CLI."""

import sys

from fromscratch.cli import main

sys.exit(main())
