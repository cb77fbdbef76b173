"""Import Once-for-All's published supernets and accuracy predictor.

Download the files by hand (nothing is fetched here; see docs/pretrained.md),
then convert them:

    ofa-import-pretrained supernet ofa_mbv3_d234_e346_k357_w1.0 \\
        --out runs/ofa-mbv3-w1.0/final.pt [--space ofa-mbv3-w1.0] [--data /data/imagenet]

    ofa-import-pretrained accuracy-predictor acc_predictor.pth \\
        --space runs/ofa-mbv3-w1.0/final.pt --out runs/ofa-mbv3-w1.0/top1.skops

``supernet`` writes this package's checkpoint (``ofa.training.load_supernet``
reads it; every weight mapped, BN statistics and kernel-transform matrices
included); the space is inferred from the tensor shapes unless ``--space`` is
given. ``--data`` records an ImageNet-format folder (``train/``, ``val/``) as
the supernet's data set. ``accuracy-predictor`` writes an accuracy predictor
(top-1 in percent) for the space of ``--space`` (a preset or a converted
checkpoint); ``--encoding`` and ``--image-sizes`` describe the predictor (by
default read from its keys, and the space's resolutions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ofa.cli import run_command
from ofa.validation import ArgumentParser, check_input_dir, check_input_file, check_output_path, choice, positive_int

ENCODING_CHOICES = ("auto", "tutorial", "arch-encoder")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="what", required=True, metavar="{supernet,accuracy-predictor}")
    s = commands.add_parser("supernet", help="convert ofa_mbv3_d234_e346_k357_w1.0 / _w1.2 into a checkpoint")
    s.add_argument("checkpoint", help="the downloaded reference supernet file")
    s.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    s.add_argument("--space", help="target space preset (default: inferred: ofa-mbv3-w1.0 or ofa-mbv3-w1.2)")
    s.add_argument("--data", help="ImageNet-format folder (train/, val/) to record as the supernet's data set")
    s.add_argument("--overwrite", action="store_true", help="replace an existing file of another kind at --out")
    a = commands.add_parser("accuracy-predictor", help="convert a reference accuracy predictor into a .skops file")
    a.add_argument("checkpoint", help="the downloaded predictor state dict (e.g. acc_predictor.pth)")
    a.add_argument("--space", required=True, help="space preset or converted supernet checkpoint (.pt)")
    a.add_argument("--out", required=True, help="predictor file to write (.skops)")
    a.add_argument("--encoding", default="auto", type=choice(ENCODING_CHOICES),
                   help="auto (from the keys), tutorial (acc_predictor.pth) or arch-encoder")
    a.add_argument("--image-sizes", nargs="+", type=positive_int,
                   help="the arch-encoder's image_size_list, in order (default: the space's resolutions)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing file of another kind at --out")
    return p.parse_args(argv)


def _space_file(space) -> list[tuple[str, Path]]:
    """The --space file (a space file or checkpoint), if --space names one: never an output."""
    path = Path(space) if space else None
    return [("the --space file", path)] if path is not None and path.is_file() else []


def import_supernet(args) -> Path:
    from ofa.pretrained import convert_ofa_mbv3_checkpoint, save_converted_supernet

    source = check_input_file(args.checkpoint, "checkpoint")
    inputs = [("the input checkpoint", source)] + _space_file(args.space)
    if args.data is not None:
        check_input_dir(args.data, "--data")
    out = check_output_path(args.out, inputs, kind=("checkpoint",), overwrite=args.overwrite, name="--out")
    supernet = convert_ofa_mbv3_checkpoint(source, args.space)
    data = str(Path(args.data).resolve()) if args.data is not None else None
    save_converted_supernet(supernet, out, source=source.name, data=data)
    count = sum(t.numel() for t in supernet.state_dict().values() if t.is_floating_point())
    print(f"{source.name}: {len(supernet.state_dict())} tensors ({count / 1e6:.2f} M values) -> {out} "
          f"(space fingerprint {supernet.space.fingerprint})")
    return out


def import_accuracy_predictor(args) -> Path:
    from predictors.ofa_reference import convert_ofa_accuracy_predictor

    source = check_input_file(args.checkpoint, "checkpoint")
    inputs = [("the input checkpoint", source)] + _space_file(args.space)
    if Path(args.space).suffix == ".pt":
        check_input_file(args.space, "--space")
    out = check_output_path(args.out, inputs, kind=("predictor",), overwrite=args.overwrite, name="--out")
    from ofa.spaces import resolve_space

    space = resolve_space(args.space)
    predictor = convert_ofa_accuracy_predictor(source, space, encoding=args.encoding, image_sizes=args.image_sizes,
                                               source=source.name)
    predictor.save(out)
    reference = predictor.metrics_["reference"]
    print(f"{source.name}: {reference['encoding']} MLP {reference['layers']}, base_acc {reference['base_acc']:g} "
          f"-> {out} (space fingerprint {space.fingerprint})")
    return out


def run(args) -> Path:
    return import_supernet(args) if args.what == "supernet" else import_accuracy_predictor(args)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
