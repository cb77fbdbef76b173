"""Train a supernet end to end through every progressive-shrinking phase.

    >>> from ofa_pipeline.train import train_supernet
    >>> final = train_supernet("mbv3-small-digits", "runs/digits")                    # -> runs/digits/final.pt
    >>> final = train_supernet("mbv3-small-digits", "runs/digits", resume=True, processes=2)   # data-parallel

The config's search space picks the trainer (``ofa.training.TRAINERS``). The run directory
receives ``last.pt`` (each epoch), ``phase<i>-<name>.pt`` (phase ends), ``final.pt``,
``metrics.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from ofa.errors import ConfigError, OFAError

# torchrun starts each data-parallel process from a module: the command's, which calls train_supernet
# with processes=1 in every process
DATA_PARALLEL_ENTRY_POINT = "ofa_pipeline.commands.train_supernet"


def train_supernet(config: str | os.PathLike | Mapping, out: str | os.PathLike, *, resume: bool = False,
                   progress: bool = True, processes: int = 1) -> Path:
    """Train the supernet of ``config`` (a training config: a YAML file, an installed config's name such
    as ``mbv3-small-digits``, or the mapping such a file holds) into the run directory ``out``;
    ``resume`` continues from ``<out>/last.pt`` if it exists. With ``processes`` > 1 (a config file
    only), that many data-parallel processes on this machine, under torchrun. Returns ``<out>/final.pt``."""
    if processes < 1:
        raise ConfigError(f"processes {processes}: give 1 or more")
    if processes > 1:
        return _train_data_parallel(config, out, resume, progress, processes)
    from ofa.training import config_space, get_trainer, load_yaml
    from ofa.training.distributed import cleanup
    from ofa.validation import check_output_path

    try:
        if isinstance(config, Mapping):
            config, inputs = dict(config), []
        else:
            config, inputs = load_yaml(config), [("the config", config)]
        check_output_path(out, inputs, kind="dir", name="the run directory")
        if not progress:
            config.setdefault("train", {})["progress"] = False
        trainer = get_trainer(config_space(config).type_name)(config, out, resume=resume)
        trainer.run()
    finally:
        cleanup()  # the process group of a data-parallel process
    return Path(out) / "final.pt"


def _train_data_parallel(config, out, resume: bool, progress: bool, processes: int) -> Path:
    from ofa.training import config_space, load_yaml
    from ofa.validation import check_output_path

    if isinstance(config, Mapping):
        raise ConfigError("data-parallel training starts its processes from a config file; write the mapping to "
                          "a YAML file and give its path")
    check_output_path(out, [("the config", config)], kind="dir", name="the run directory")
    config_space(load_yaml(config))  # a bad config fails here, before any process starts
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", DATA_PARALLEL_ENTRY_POINT, "--config", str(config), "--out", str(out)]
    command += ["--resume"] * resume + ["--no-progress"] * (not progress)
    code = subprocess.run(command).returncode
    if code:
        raise OFAError(f"data-parallel training ({processes} processes) exited with {code}; see the message above")
    return Path(out) / "final.pt"


__all__ = ["train_supernet"]
