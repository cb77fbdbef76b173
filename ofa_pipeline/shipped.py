"""A device's latency predictor for a space, from the profiles that ship with the package.

    >>> from ofa.spaces import get_space
    >>> from ofa_pipeline.shipped import shipped_latency_predictor
    >>> path, report = shipped_latency_predictor(get_space("mbv3-small", num_classes=3), "fpga-dpu", "runs/p")

What ``ofa-specialize`` fits for a ``--device`` it was given no ``--latency-predictor`` for.
In order of preference:

1. a shipped *network* profile of this very space (same fingerprint) on the device: a
   predictor fitted on its measured networks (:func:`predictors.fit_latency_predictor`,
   default label), with prediction intervals;
2. a shipped *block* profile on the device that holds most of the blocks the space's
   networks run (:data:`MIN_REUSED_FRACTION`). Blocks are matched by key, so a profile
   measured on one space serves every space whose networks run the same blocks: a
   supernet trained with another number of classes differs only in its classifier
   head, one with another resolution set in the blocks of the new resolutions. The
   blocks it holds are reused. Those it lacks are priced here when this machine's
   backend is the device that priced the profile: simulators must reproduce one of the
   profile's blocks exactly; timed blocks are scaled to the profile's timings by a
   similar block of the profile timed beside them. Otherwise the block model fitted on
   the profile's blocks predicts them. The result is a block-sum predictor
   (:func:`predictors.blocks.fit_block_predictor`) on the merged table, which is saved
   as a block profile of the space next to the predictor. Where the shipped *network*
   profile of the block profile's own space on the same device exists, the
   network-level correction (what plain block sums miss on a timed runtime: +158% on
   cpu-ort, +119% on mobile-ncnn) is fitted on its networks and applied to this space's
   block sums (``correction_from``: the correction is a function of the block sum and
   the number of blocks, both defined here); its cross-validated error there is
   reported (``correction``), and its out-of-fold residuals there give the prediction
   intervals, which the report and ``metrics_["correction_source"]`` say come from the
   profile's own space, not from measured networks of this one. Without such a network
   profile the predictor sums plain blocks and has no intervals (:data:`NO_INTERVALS`);
   how far plain block sums are from the source's own networks is reported
   (``source_space_check``) in both cases;
3. otherwise a :class:`~ofa.errors.ConfigError` naming every profile considered and why
   it did not apply.

The report, a plain dict (also stored in the saved predictor's ``metrics_["shipped"]``):

* ``device``, ``space_fingerprint``: what the predictor is for;
* ``source``, ``profile``: ``"network profile"`` or ``"block profile"``, and the shipped
  profile's name;
* ``predictor``, ``model``, ``label``, ``networks``: the saved file, its model, the label
  fitted, and the number of measured networks it was fitted on;
* ``blocks_total``, ``blocks_reused``, ``blocks_priced_here``, ``blocks_predicted``: the
  space's blocks and where their latencies came from (None for a network profile);
* ``priced_here_by``, ``why_predicted``: how the blocks priced here were priced, and why
  blocks were predicted instead, if any were;
* ``block_profile``, ``priced_profile``: the merged block profile of the space, and the
  file of the blocks priced here (a rerun resumes it);
* ``correction``: the network-level correction, where one was fitted: ``network_profile``,
  ``networks`` and ``space_fingerprint`` of the source networks, the ``model``, and its
  cross-validated error on them (``cv_mape_percent``, ``cv_within_10_percent``); None
  otherwise, with ``why_no_correction``;
* ``intervals``, ``intervals_note``: whether the predictor has prediction intervals, where
  they come from or why there are none, and how to get intervals of this space's own;
* ``source_space_check``: plain block sums of the profile against the shipped networks of
  its own space on the device (``mape_percent``, ``median_error_percent``), where those ship;
* ``considered``: every shipped profile on the device looked at, whether it applies and why;
* ``lines``: the report in a few lines, as logged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from ofa.errors import BackendUnavailableError, ConfigError, OFAError
from ofa.spaces import block_from_dict, resolve_space

# A block profile is used when it holds at least this share of the space's blocks: below
# it the predictor would rest mostly on blocks priced elsewhere (or guessed), and
# profiling the space's blocks on purpose (ofa-profile-device --blocks) is the better path.
MIN_REUSED_FRACTION = 0.5
# Simulators are deterministic: one block priced again here reproduces the profile's value
# to rounding when the simulator and its accelerator config are the ones that made it.
REPRODUCE_RTOL = 1e-6
LOCATION_STATS = ("median", "mean", "p10", "p90")  # the statistics in ms that a session's speed scales
# A block timed here is scaled to the profile by a similar block timed beside it; a session
# that ran that block more than this many times faster or slower than the profile is too
# unlike it (another machine behind the same device id, a host under heavy load).
TIMING_RATIO_LIMIT = 2.0
SOURCE_ERROR_WARNING_PERCENT = 10.0  # block sums this far off the source's own networks earn a WARNING

TRANSFERRED_INTERVALS = ("its prediction intervals are the network correction's cross-validated residuals on the "
                         "{networks} shipped networks of {profile} (the block profile's own space, same device), not "
                         "residuals measured on networks of this space")
NO_INTERVALS = ("it has no prediction intervals: they come from held-out networks, and no shipped profile holds "
                "measured networks of this space (the shipped network profiles of other spaces say nothing "
                "held-out about these networks)")


def shipped_latency_predictor(space, device: str, out_dir, *,
                              log: Callable[[str], object] = print) -> tuple[Path, dict]:
    """Fit and save (``out_dir/<device>.skops``) a latency predictor of ``device`` (a
    backend name such as ``cpu-ort`` or a device id) for ``space`` from the shipped
    profiles; return its path and a report (see the module docstring). ``log`` receives
    progress and the report's lines. Raises ConfigError when no shipped profile serves
    the space on that device."""
    from hardware_profiles import read_profile

    space = resolve_space(space)
    out_dir = Path(out_dir)
    considered = []
    for name, path, header in _shipped_networks():
        if not _on_device(header, device):
            continue
        if header["space_fingerprint"] != space.fingerprint:
            considered.append({"profile": name, "level": "network", "applies": False,
                               "why": f"measures networks of space {header['space_fingerprint']}"})
            continue
        considered.append({"profile": name, "level": "network", "applies": True, "why": "same space"})
        return _from_network_profile(read_profile(path), name, device, out_dir, considered, log)

    candidates = _block_candidates(space, device, considered)
    if not candidates:
        raise ConfigError(_nothing_applies(space, device, considered))
    best = max(candidates, key=lambda c: (len(c["reused"]), -len(c["missing"])))
    return _from_block_profile(space, device, out_dir, best, considered, log)


# --- 1. a network profile of the space ------------------------------------------------------------------
def _from_network_profile(profile, name, device, out_dir, considered, log):
    from predictors import fit_latency_predictor

    log(f"fitting a {device} latency predictor on the shipped profile {name} ({len(profile)} networks)")
    predictor = fit_latency_predictor(profile)
    path = out_dir / f"{device}.skops"
    report = {"device": device, "space_fingerprint": profile.space.fingerprint, "source": "network profile",
              "profile": name, "predictor": str(path), "model": predictor.model_name,
              "label": predictor.metrics_.get("target"), "networks": len(profile),
              "blocks_total": None, "blocks_reused": None, "blocks_priced_here": None, "priced_here_by": None,
              "blocks_predicted": None, "why_predicted": None, "block_profile": None, "priced_profile": None,
              "correction": None, "why_no_correction": None, "source_space_check": None,
              "intervals": predictor.interval_residuals_ is not None, "intervals_note": None,
              "considered": considered}
    report["lines"] = [f"{device}: {predictor.model_name} fitted on the {len(profile)} networks of the shipped "
                       f"profile {name} ({report['label']})"]
    return _save(predictor, path, report, log)


# --- 2. a block profile that holds most of the space's blocks -------------------------------------------
def _block_candidates(space, device, considered) -> list[dict]:
    """The shipped block profiles on ``device`` that hold enough of the space's blocks
    (each one considered is noted in ``considered``, with why it does not apply)."""
    from hardware_profiles import read_profile, shipped_block_profile_path, shipped_block_profiles
    from predictors.blocks import space_blocks

    universe = None
    candidates = []
    for name in shipped_block_profiles():
        path = shipped_block_profile_path(*name.split("_", 1))
        if not _on_device(_header(path), device):
            continue
        note = {"profile": name, "level": "block", "applies": False}
        considered.append(note)
        if universe is None:
            try:
                universe = space_blocks(space)
            except (OFAError, NotImplementedError) as error:
                note["why"] = f"this {space.type_name} space has no block-sum view ({error or 'no block specs'})"
                return []
        profile = read_profile(path)
        held = {r["key"] for r in profile.records}
        reused = [b for b in universe if b.key in held]
        note.update(blocks_reused=len(reused), blocks_total=len(universe))
        if len(reused) < MIN_REUSED_FRACTION * len(universe):
            note["why"] = (f"holds {len(reused)} of the space's {len(universe)} blocks; at least "
                           f"{MIN_REUSED_FRACTION:.0%} are needed")
            continue
        note.update(applies=True, why=f"holds {len(reused)} of the space's {len(universe)} blocks")
        candidates.append({"name": name, "path": path, "profile": profile, "note": note, "reused": reused,
                           "missing": [b for b in universe if b.key not in held], "universe": universe})
    return candidates


def _from_block_profile(space, device, out_dir, candidate, considered, log):
    from hardware_profiles import read_profile
    from ofa.io import atomic_write_text
    from predictors.blocks import fit_block_predictor

    name, source, missing = candidate["name"], candidate["profile"], candidate["missing"]
    keys = {b.key for b in candidate["universe"]}
    reused = [r for r in source.records if r["key"] in keys or _is_null(r)]
    added, priced_by, why_not, priced_path = [], None, None, None
    out_dir.mkdir(parents=True, exist_ok=True)
    if missing:
        backend, why_not = _pricing_backend(source, missing[0])
        if backend is not None:
            log(f"{'simulating' if backend.simulated else 'timing'} the {len(missing)} block(s) of this space "
                f"missing from the shipped block profile {name} on {backend.name}")
            priced_path = out_dir / f"{device}-{space.fingerprint}.priced-blocks.jsonl"
            added, why_not = _price(space, backend, source, missing, priced_path)
            if added:
                priced_by = (f"simulated on {backend.name} ({source.device})" if backend.simulated else
                             f"timed on {backend.name} ({source.device}), scaled to the profile's timings of "
                             f"similar blocks timed beside them")
    block_path = out_dir / f"{device}.blocks.jsonl"
    atomic_write_text(block_path, _merged_profile_text(space, source, name, reused, added))
    merged = read_profile(block_path)
    predictor, correction, why_no_correction = None, None, None
    networks = _source_network_profile(source, device)
    if networks is None:
        why_no_correction = (f"no shipped network profile of the block profile's own space "
                             f"({source.space.fingerprint}) on {device}")
    else:
        networks_name, networks_path = networks
        log(f"fitting the network-level correction on the shipped networks {networks_name} (the block profile's "
            f"own space)")
        try:
            predictor = fit_block_predictor(merged, correction_from=(source, read_profile(networks_path)))
        except OFAError as error:  # e.g. the networks lack the blocks' label
            why_no_correction = f"the shipped networks {networks_name} could not fit one: {error}"
        else:
            fitted = predictor.metrics_["correction_source"]
            correction = {"network_profile": networks_name, "networks": fitted["n_networks"],
                          "space_fingerprint": fitted["space_fingerprint"], "model": fitted["correction"],
                          "cv_mape_percent": (fitted["cv"] or {}).get("mape"),
                          "cv_within_10_percent": (fitted["cv"] or {}).get("within_10")}
    if predictor is None:
        predictor = fit_block_predictor(merged)
    blocks = predictor.metrics_["blocks"]
    correction_intervals = correction is not None and predictor.interval_residuals_ is not None
    intervals = (TRANSFERRED_INTERVALS.format(networks=correction["networks"], profile=correction["network_profile"])
                 if correction_intervals else NO_INTERVALS)
    path = out_dir / f"{device}.skops"
    why_predicted = None
    if blocks["predicted"]:
        why_predicted = (f"{why_not or 'they could not be priced here'}; the {blocks['model']} block model "
                         f"fitted on the profile's blocks predicts them")
    report = {"device": device, "space_fingerprint": space.fingerprint, "source": "block profile", "profile": name,
              "predictor": str(path), "model": predictor.model_name, "label": predictor.metrics_.get("target"),
              "networks": 0, "blocks_total": blocks["used"], "blocks_reused": len(candidate["reused"]),
              "blocks_priced_here": len(added), "priced_here_by": priced_by,
              "blocks_predicted": blocks["predicted"], "why_predicted": why_predicted,
              "block_profile": str(block_path), "priced_profile": None if priced_path is None else str(priced_path),
              "correction": correction, "why_no_correction": why_no_correction,
              "intervals": predictor.interval_residuals_ is not None,
              "intervals_note": intervals + _how_to_get_intervals(
                  source, block_path,
                  "measured on this space," if correction_intervals else "(and --latency-confidence)"),
              "source_space_check": _plain_sums_check(predictor, correction) or _source_space_check(
                  source, device, predictor.metrics_.get("target")),
              "considered": considered}
    lines = [f"{device}: block-sum predictor from the shipped block profile {name} ({report['label']}): "
             f"{report['blocks_reused']} of the space's {report['blocks_total']} blocks reused, "
             f"{len(added)} priced here, "
             f"{blocks['predicted']} predicted by the block model"]
    if priced_by:
        lines.append(f"  blocks priced here: {priced_by}")
    if why_predicted:
        lines.append(f"  blocks predicted: {why_predicted}")
    check = report["source_space_check"]
    if correction:
        plain = (f" (plain block sums are off them by {check['median_error_percent']:+.1f}% median)" if check else "")
        lines.append(f"  network-level correction ({correction['model']}) fitted on the {correction['networks']} "
                     f"shipped networks of the profile's own space ({correction['network_profile']}){plain} and "
                     f"applied to this space's block sums: cross-validated there "
                     f"{_percent(correction['cv_mape_percent'])} mean absolute error, "
                     f"{_percent(correction['cv_within_10_percent'])} within +-10%; no network of this space was "
                     f"measured, expect about as much here")
    else:
        if check:
            warn = "WARNING: " if abs(check["median_error_percent"]) > SOURCE_ERROR_WARNING_PERCENT else ""
            lines.append(f"  {warn}on the profile's own space the same block sums (no network correction) are off "
                         f"its {check['networks']} shipped networks ({check['network_profile']}) by "
                         f"{check['median_error_percent']:+.1f}% (median; mean absolute {check['mape_percent']:.1f}%):"
                         f" expect about as much here")
        if networks is not None:
            lines.append(f"  no network-level correction: {why_no_correction}")
    lines.append(f"  {intervals}")
    lines.append(f"  merged block profile of this space: {block_path}")
    report["lines"] = lines
    return _save(predictor, path, report, log)


def _source_network_profile(source, device: str) -> tuple[str, Path] | None:
    """``(name, path)`` of the shipped network profile of the block profile ``source``'s
    own space on ``device`` (same space fingerprint, same device id), if one ships."""
    for name, path, header in _shipped_networks():
        if (header["space_fingerprint"] == source.space.fingerprint and _on_device(header, device)
                and header["device"] == source.device):
            return name, path
    return None


def _plain_sums_check(predictor, correction: dict | None) -> dict | None:
    """:func:`_source_space_check` as the fitted correction already measured it."""
    if not correction:
        return None
    plain = predictor.metrics_["correction_source"]["block_sum_error_percent"]
    return {"network_profile": correction["network_profile"], "networks": correction["networks"],
            "mape_percent": plain["mape"], "median_error_percent": plain["median"]}


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _source_space_check(source, device: str, target: str | None) -> dict | None:
    """How far plain block sums of the source profile are from the shipped networks of
    the source's own space on the same device, if any ship: the closest honest measure
    of a block-sum predictor for a space none of whose networks were measured."""
    import numpy as np

    from hardware_profiles import read_profile
    from predictors.blocks import fit_block_predictor
    from predictors.core import profile_targets

    metric, _, statistic = (target or "").rpartition(".")
    for name, path, header in _shipped_networks():
        if header["space_fingerprint"] != source.space.fingerprint or not _on_device(header, device):
            continue
        try:
            _, genes, y = profile_targets(read_profile(path), metric or None, statistic or None)
        except OFAError:  # the networks lack the label the blocks were fitted on
            return None
        sums = fit_block_predictor(source, metric=metric or None, statistic=statistic or None).predict_genes(genes)
        error = sums / y - 1
        return {"network_profile": name, "networks": int(len(y)), "mape_percent": float(np.mean(np.abs(error)) * 100),
                "median_error_percent": float(np.median(error) * 100)}
    return None


def _pricing_backend(source, example):
    """``(backend, None)`` when this machine's backend is the device that priced
    ``source``, else ``(None, why not)``. ``example``: a block that will be priced."""
    from hardware_profiles.backends import BACKENDS, get_backend

    header = source.header
    name = header["backend"]
    if name not in BACKENDS:
        return None, f"backend {name!r} is not installed here"
    backend = get_backend(name)
    try:
        backend.check_available()
    except BackendUnavailableError as error:
        return None, f"{name} cannot run here ({error})"
    here = backend.default_device()
    if here != header["device"]:
        return None, (f"{name} here is device {here!r} but the profile was priced on {header['device']!r}: a sum "
                      f"of blocks priced on two devices would be neither's latency")
    if backend.simulated:
        # version strings change with the package and accelerator configs with the user's
        # defaults; pricing one of the profile's own blocks again says whether this is its simulator
        anchor = _anchor(source, example)
        again = backend.measure_blocks([block_from_dict(anchor["block"])])[0]["latency_ms"]["median"]
        shipped = anchor["latency_ms"]["median"]
        if not math.isclose(again, shipped, rel_tol=REPRODUCE_RTOL):
            return None, (f"{name} here prices the profile's block {anchor['key']} at {again:.6g} ms, the profile "
                          f"says {shipped:.6g} ms (another simulator version or accelerator config)")
        return backend, None
    differs = [f"{k} {v!r} vs {header[k]!r}" for k, v in backend.header_fields().items()
               if k in header and header[k] != v]
    if backend.version() != header["backend_version"]:
        differs.insert(0, f"version {backend.version()} vs {header['backend_version']}")
    if getattr(backend, "threads", 1) != header.get("threads", 1):
        differs.append(f"threads {backend.threads} vs {header.get('threads')}")
    if differs:
        return None, f"{name} here runs otherwise than the profile's ({'; '.join(differs)})"
    return backend, None


def _price(space, backend, source, blocks, path: Path) -> tuple[list[dict], str | None]:
    """``(records, None)`` of ``blocks`` priced on ``backend`` (resumably, into ``path``)
    in the terms of ``source``, or ``([], why not)``.

    A simulator's records are the profile's own terms. A timed backend runs at this
    session's speed (load, clocks, caches), not the profile's: each block is timed beside
    the profile's block of the same kind nearest in MACs (its *anchor*), and scaled by
    how much faster the profile timed the anchor. On that scale the profile's null block
    (the runtime overhead a block-sum predictor takes off every block) holds for the new
    blocks too, so none is timed here."""
    from hardware_profiles import profile_blocks

    anchors = {b.key: _anchor(source, b) for b in blocks}
    todo = list(blocks)
    if not backend.simulated:
        todo += [block_from_dict(a["block"]) for a in {a["key"]: a for a in anchors.values()}.values()]
    priced = profile_blocks(space, backend, path, blocks=todo, device=source.device,
                            batch_size=source.header.get("batch_size", 1), runtime_overhead=False,
                            progress=not backend.simulated)
    here = {r["key"]: r for r in priced.records}
    if backend.simulated:
        return [_like(here[b.key], anchors[b.key]) for b in blocks], None
    records = []
    for block in blocks:
        anchor = anchors[block.key]
        record, ratio = _on_source_scale(here[block.key], here[anchor["key"]], anchor)
        if not 1 / TIMING_RATIO_LIMIT <= ratio <= TIMING_RATIO_LIMIT:
            return [], (f"the profile's block {anchor['key']} timed here ran {1 / ratio:.2f}x its time in the "
                        f"profile: this session runs too unlike the profile's for one scale to bridge")
        records.append(record)
    return records, None


def _anchor(source, block) -> dict:
    """The source's record of the block most like ``block``: same kind, nearest in MACs."""
    records = [r for r in source.records if not _is_null(r)]
    same = [r for r in records if r["block"]["kind"] == block.kind] or records
    macs = max(block.macs, 1)
    return min(same, key=lambda r: abs(math.log(max(block_from_dict(r["block"]).macs, 1) / macs)))


def _on_source_scale(record: dict, anchor_here: dict, anchor_source: dict) -> tuple[dict, float]:
    """``record`` timed here, scaled per clock and statistic by anchor (profile) / anchor
    (here), and the ratio of medians furthest from 1 over the clocks (for the check)."""
    out = _like(record, anchor_source)
    ratios = {}
    for metric, stats in out.items():
        if not (metric.endswith("_ms") and isinstance(stats, dict) and isinstance(anchor_here.get(metric), dict)):
            continue
        stats = dict(stats)
        for stat in LOCATION_STATS:
            here = anchor_here[metric][stat]
            stats[stat] = stats[stat] * anchor_source[metric][stat] / here if here > 0 else stats[stat]
        ratio = anchor_source[metric]["median"] / anchor_here[metric]["median"]
        stats["std"] = stats["std"] * ratio
        ratios[metric] = ratio
        out[metric] = stats
    out["scaled_to_profile"] = {"anchor": anchor_source["key"], "ratio": ratios}
    worst = max(ratios.values(), key=lambda r: max(r, 1 / r)) if ratios else 1.0
    return out, worst


def _like(record: dict, source_record: dict) -> dict:
    """``record`` with only the fields the source's records carry: a profile's records
    must hold the same metrics, or a label would be read from some and not others."""
    return {k: v for k, v in record.items() if k in source_record}


def _is_null(record: dict) -> bool:
    return record["key"].startswith("null:")


def _merged_profile_text(space, source, name: str, reused: list[dict], added: list[dict]) -> str:
    """A block profile of ``space`` (JSON lines): the source's header with this space
    and how the blocks were gathered, then the reused and the newly priced records."""
    header = dict(source.header)
    protocol = dict(header.get("protocol") or {})
    selection = {"method": "shipped", "shipped_profile": name,
                 "reused": sum(1 for r in reused if not _is_null(r)), "priced_here": len(added),
                 "num_blocks": len(reused) + len(added)}
    if "null_block" in (protocol.get("blocks") or {}):
        selection["null_block"] = protocol["blocks"]["null_block"]
    protocol["blocks"] = selection
    header.update(space=space.to_dict(), space_fingerprint=space.fingerprint, protocol=protocol)
    # the corrected_* metrics are derived by whoever reads a profile, on its own scale: not written
    lines = [header, *({k: v for k, v in r.items() if not k.startswith("corrected_")} for r in [*reused, *added])]
    return "".join(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n" for line in lines)


def _how_to_get_intervals(source, block_path: Path, which: str) -> str:
    backend = source.header["backend"]
    return (f". For intervals {which} measure some networks of this space (ofa-profile-device "
            f"--space SUPERNET --backend {backend} --num-archs 20 --out NETWORKS.jsonl) and fit with them: "
            f"ofa-fit-predictor --blocks {block_path} --profile NETWORKS.jsonl --out PREDICTOR.skops")


# --- helpers ------------------------------------------------------------------------------------------
def _shipped_networks():
    """``(name, path, header)`` of every shipped network profile, reading headers only."""
    from hardware_profiles import shipped_profile_path, shipped_profiles

    for name in shipped_profiles():
        path = shipped_profile_path(*name.split("_", 1))
        yield name, path, _header(path)


def _header(path: Path) -> dict:
    """A profile's header line (enough to tell its device and space without reading it all)."""
    with open(path, encoding="utf-8") as handle:
        return json.loads(handle.readline())


def _on_device(header: dict, device: str) -> bool:
    return device in (header["backend"], header["device"])


def _save(predictor, path: Path, report: dict, log) -> tuple[Path, dict]:
    from predictors.core import json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    predictor.metrics_["shipped"] = json_safe({k: v for k, v in report.items() if k != "lines"})
    predictor.save(path)
    for line in report["lines"]:
        log(line)
    return path, report


def _nothing_applies(space, device: str, considered: list[dict]) -> str:
    from hardware_profiles import shipped_block_profiles, shipped_profiles

    if considered:
        tried = "; ".join(f"{c['level']} profile {c['profile']}: {c['why']}" for c in considered)
    else:
        devices = sorted({name.split("_", 1)[1] for name in shipped_profiles() + shipped_block_profiles()})
        tried = f"no shipped profile is for device {device!r}; shipped backends: {devices}"
    return (f"no latency predictor for device {device!r}: no shipped profile serves this space "
            f"({space.fingerprint}) on it ({tried}). Measure the device (ofa-profile-device --space SUPERNET "
            f"--backend BACKEND [--blocks] --out PROFILE), fit a predictor on that profile (ofa-fit-predictor) "
            f"and pass it as --latency-predictor")


__all__ = ["MIN_REUSED_FRACTION", "NO_INTERVALS", "TRANSFERRED_INTERVALS", "shipped_latency_predictor"]
