"""Crash-safe training checkpoints that load without unpickling code.

A checkpoint is one ``torch.save`` file of plain containers and tensors,
written atomically (temp file + fsync + rename, :func:`ofa.io.atomic_torch_save`)
and read with ``torch.load(weights_only=True)``. It holds everything a run
needs to continue exactly where it stopped::

    {"format": "ofa-checkpoint", "version": 1,
     "trainer": "mobilenetv3",            # key of ofa.training.TRAINERS
     "space": space.to_dict(), "space_fingerprint": "...",
     "config": {...},                     # the validated training config
     "model": state_dict, "optimizer": state_dict | None, "scheduler": state_dict | None,
     "rng": rng_state(),                  # python / numpy / torch generator states
     "phase": int, "epoch": int, "step": int,   # where to continue
     "extra": {...}}                      # trainer-specific tensors/plain data (e.g. the teacher)

Any trainer can use :func:`save_checkpoint` / :func:`load_checkpoint`; the
keys above are checked on load so that a truncated or foreign file fails with
:class:`~ofa.errors.CheckpointError` and a checkpoint of another search space
with :class:`~ofa.errors.SpaceMismatchError` before any work starts.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, SpaceMismatchError
from ..io import atomic_torch_save, load_plain_torch_file
from ..spaces import SPACE_FILE_LOADERS

FORMAT = "ofa-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "trainer", "space", "space_fingerprint", "config", "model", "phase",
                 "epoch", "step")


# --- random number generator states as plain data -------------------------------------------------------
def rng_state() -> dict:
    """The global python / numpy / torch RNG states as tensors and plain data
    (so that the checkpoint loads with ``weights_only=True``)."""
    version, mt_state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["kind"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- save / load -----------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, *, trainer: str, space, config: dict, model: torch.nn.Module | dict,
                    optimizer=None, scheduler=None, phase: int = 0, epoch: int = 0, step: int = 0,
                    extra: dict | None = None, include_rng: bool = True) -> Path:
    """Write a checkpoint atomically; returns its path.

    ``model`` is a module or a state dict (a ``DistributedDataParallel``
    wrapper is unwrapped). ``phase``/``epoch``/``step`` say where a resumed
    run continues; ``extra`` holds trainer-specific plain data or tensors."""
    if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    payload = {
        "format": FORMAT, "version": VERSION, "trainer": trainer,
        "space": space.to_dict(), "space_fingerprint": space.fingerprint,
        "config": config,
        "model": state,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state() if include_rng else None,
        "phase": int(phase), "epoch": int(epoch), "step": int(step),
        "extra": extra or {},
    }
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", space=None) -> dict:
    """Read and check a checkpoint (``weights_only=True``).

    Raises :class:`CheckpointError` for a missing, truncated, corrupt or
    foreign file and :class:`SpaceMismatchError` when ``space`` is given and
    the checkpoint was trained on another search space."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory; pass the checkpoint file in it "
                              f"(e.g. {str(path / 'final.pt')!r})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (an interrupted copy?); use another checkpoint")
    payload = load_plain_torch_file(path, CheckpointError, "checkpoint",
                                    "it is truncated, corrupt or not a checkpoint of this package: resume from "
                                    "another one", map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an {FORMAT} file (no 'format': {FORMAT!r} entry)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {payload.get('version')!r}; "
                              f"this package reads version {VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the entries {missing}")
    if space is not None and payload["space_fingerprint"] != space.fingerprint:
        raise SpaceMismatchError(
            f"checkpoint {str(path)!r} was trained on the search space with fingerprint "
            f"{payload['space_fingerprint']!r} ({payload['space'].get('type')}), but the space in use has "
            f"fingerprint {space.fingerprint!r}: use the config/space the checkpoint was trained with")
    return payload


def checkpoint_space(payload: dict):
    """The search space a loaded checkpoint was trained on (fingerprint checked)."""
    from ..spaces import space_from_dict

    space = space_from_dict(payload["space"])
    if space.fingerprint != payload["space_fingerprint"]:
        raise SpaceMismatchError(
            f"the checkpoint's stored space has fingerprint {space.fingerprint!r} in this version of the "
            f"package, but it was saved with {payload['space_fingerprint']!r}: the space definition changed")
    return space


def load_supernet(path: str | os.PathLike, map_location: str | torch.device = "cpu", space=None) -> torch.nn.Module:
    """The trained supernet of a checkpoint, built with
    :func:`ofa.create_supernet` from the stored space, weights loaded, in eval
    mode; ``supernet.space`` is the space. ``space`` (optional) must match."""
    from ..supernets import create_supernet

    payload = load_checkpoint(path, map_location=map_location, space=space)
    stored_space = checkpoint_space(payload)
    supernet = create_supernet(stored_space, **payload["extra"].get("supernet_kwargs", {}))
    try:
        supernet.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights do not fit the supernet of its space "
                              f"({str(error).splitlines()[0][:200]})") from None
    supernet.to(map_location)
    supernet.space = stored_space
    supernet.eval()
    return supernet


__all__ = ["FORMAT", "VERSION", "checkpoint_space", "load_checkpoint", "load_supernet", "rng_state",
           "save_checkpoint", "set_rng_state"]


def _space_of_checkpoint_file(path):
    return checkpoint_space(load_checkpoint(path))


# ``resolve_space("runs/x/final.pt")``: a trained checkpoint names the space it was trained on
SPACE_FILE_LOADERS[".pt"] = _space_of_checkpoint_file
