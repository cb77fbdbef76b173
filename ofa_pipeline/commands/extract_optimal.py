"""Bort-style optimal sub-architecture extraction over an encoder-only space.

    ofa-extract-optimal --supernet runs/bort-small/final.pt --out runs/bort-small/optimal.json
    ofa-extract-optimal --space bort-small --scratch-steps 100 --out runs/bort-scratch/optimal.json

Enumerates the space (or ``--samples N`` of it), computes the three surrogates
(parameters, counted inference operations, error) and writes the Pareto-optimal
set and the best architecture by the W-coefficient; see :mod:`ofa.bort`.
"""

from ofa.bort import main

if __name__ == "__main__":
    raise SystemExit(main())
