"""Train a supernet end to end through every progressive-shrinking phase.

    ofa-train-supernet --config configs/mbv3-small-digits.yaml --out runs/digits
    ofa-train-supernet --config configs/mbv3-small-digits.yaml --out runs/digits --resume
    ofa-train-supernet --config configs/mbv3-small-digits.yaml --out runs/digits --processes 2   # data-parallel

The config's search space picks the trainer (``ofa.training.TRAINERS``). The run
directory receives ``last.pt`` (each epoch), ``phase<i>-<name>.pt`` (phase ends),
``final.pt``, ``metrics.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import sys


from ofa.errors import OFAError
from ofa.validation import ArgumentParser, check_output_path, positive_int


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="training config (YAML)")
    parser.add_argument("--out", required=True, help="run directory for checkpoints and logs")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--processes", type=positive_int, default=1,
                        help="data-parallel processes on this machine, started under torchrun (default 1)")
    args = parser.parse_args(argv)

    from ofa_pipeline.train import train_supernet

    try:  # the run directory named by its option, before the library checks it again
        check_output_path(args.out, [("the --config", args.config)], kind="dir", name="--out")
        # in each process of a data-parallel run too: torchrun starts them from this module
        train_supernet(args.config, args.out, resume=args.resume, progress=not args.no_progress,
                       processes=args.processes)
    except OFAError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
