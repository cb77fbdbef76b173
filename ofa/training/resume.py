"""The start-of-run check every trainer makes before any work: continue a run
(``--resume``) only from a checkpoint of the same trainer, space and config,
and never silently overwrite a finished or interrupted one."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, ConfigError
from .checkpoint import load_checkpoint


def resume_payload(out_dir: str | Path, resume: bool, space, trainer: str, config: dict,
                   filename: str = "last.pt") -> dict | None:
    """The checkpoint to continue from, or None for a fresh run.

    With ``resume`` and ``out_dir/filename`` present: that checkpoint, after
    checking it was written by ``trainer`` for ``space``
    (:class:`~ofa.errors.SpaceMismatchError`) with the same ``config``.
    Without ``resume``: a ConfigError if ``out_dir`` already holds checkpoints."""
    out_dir = Path(out_dir)
    last = out_dir / filename
    if resume and last.exists():
        try:
            payload = load_checkpoint(last, space=space)  # CheckpointError / SpaceMismatchError up front
        except CheckpointError as error:
            phases = sorted(out_dir.glob("phase*.pt"), key=lambda p: p.stat().st_mtime)
            if not phases:
                raise
            raise CheckpointError(f"{error}. The last phase checkpoint is {str(phases[-1])!r}: to resume from "
                                  f"it, replace {str(last)!r} with a copy of it (cp {phases[-1]} {last}) and "
                                  f"rerun with --resume") from None
        if payload["trainer"] != trainer:
            raise ConfigError(f"{last} was written by the {payload['trainer']!r} trainer, not {trainer!r}")
        if payload["config"] != config:
            changed = sorted(k for k in set(payload["config"]) | set(config)
                             if payload["config"].get(k) != config.get(k))
            raise ConfigError(f"--resume: the config differs from the one {last} was trained with "
                              f"(keys {changed}); resume with the same config or start a new --out")
        return payload
    if not resume and any(out_dir.glob("*.pt")):
        raise ConfigError(f"{out_dir} already holds checkpoints; pass --resume to continue that run or "
                          f"choose another --out directory")
    return None


__all__ = ["resume_payload"]
