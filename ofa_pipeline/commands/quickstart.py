"""The whole product on the built-in default, on 2 CPU cores.

    ofa-quickstart --out runs/quickstart                 # the CNN on cluttered digits
    ofa-quickstart --out runs/quickstart --fast          # CI's reduced mode (about 2 CPU-minutes)
    ofa-quickstart --out runs/qs-text --transformer      # the Transformer default
    ofa-quickstart --out runs/qs-exits --exits           # the CNN with early exits (docs/early-exits.md)

Steps (each printed with the console command that does it on its own and the library function it calls,
see docs/python-api.md):

1. train the supernet: the small MobileNetV3 on scikit-learn's digits placed
   among clutter (``mbv3-small-cluttered-digits``: one elastic phase with
   in-place distillation, 6 epochs; as many data-parallel processes as
   ``--workers``), or with
   ``--transformer`` the small Transformer on numbers written as digits ->
   French words up to 10^9 (``configs/transformer-small-digits.yaml``; its
   subnets differ by about ten points of exact match);
2. profile subnets on ``cpu-ort`` (onnxruntime, this CPU), ``fpga-scalesim``
   (SCALE-Sim systolic-array simulation) and ``mobile-ncnn`` where ncnn is
   installed (not with ``--fast``); the timed devices one at a time with
   nothing else running, the simulator side by side with step 4's evaluation;
3. fit a latency predictor per device (a timed device's right after its
   profile, side by side with the simulator and step 4's evaluation);
4. evaluate subnets (BN re-calibrated; Transformers: validation loss) and fit
   the accuracy (Transformers: loss) predictor;
5. specialise for two latency budgets per device (evolutionary search),
   export each subnet to ONNX, measure it, plot the Pareto fronts;
6. print the final table: device, budget, architecture, predicted/measured
   latency, accuracy, loyalty (also in ``--out/quickstart.md``).

Every step resumes: re-running the same command after a kill continues, and a
step whose outputs exist and whose call and input files are unchanged since
the run that wrote them is skipped, so re-running a finished directory does
nothing. Step timings add up over runs (a skipped step adds 0) in
``--out/quickstart-steps.json`` and the report.
``--fast`` shrinks epochs, images and architecture counts (the numbers it
prints are then only a smoke test of the pipeline, not good models).

``--exits`` (CNN only) runs the early-exit pipeline instead: train the
supernet with exit heads (the config's phases, then an exit phase), profile
``cpu-ort`` block by block, fit a block-sum latency predictor, search the
subnet and its calibrated exit threshold under an expected-latency and a
worst-case budget, export one ONNX graph per segment and time it against the
static subnet (``--out/deploy-exits/result.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
import time
from dataclasses import MISSING, fields, is_dataclass, replace
from pathlib import Path
from typing import Callable

from ofa.cli import run_command
from ofa.errors import ConfigError, OFAError
from ofa.io import file_digest as sha256_hex
from ofa.validation import ArgumentParser, check_output_path, choice, positive_int


# the search keeps each pick's 90% latency bound under its budget, not the point prediction
LATENCY_CONFIDENCE = 0.9
FULL = {"profile_archs": 40, "eval_archs": 80, "population": 100, "generations": 500, "pareto_generations": 100,
        "runs": 30, "warmup": 5, "calib_images": 1000, "int8": True}
FAST = {"profile_archs": 10, "eval_archs": 24, "population": 24, "generations": 25, "pareto_generations": 10,
        "runs": 10, "warmup": 2, "calib_images": 128, "int8": False,
        "epochs": 1, "max_train_images": 64, "batch_size": 32}
# the Transformer default (number translation); --fast: a few hundred steps on a small corpus
TRANSFORMER_FULL = {**FULL, "profile_archs": 40, "eval_archs": 60, "int8": False, "eval_sentences": 200}
TRANSFORMER_FAST = {**FAST, "steps": 20, "train_size": 1000, "val_size": 60, "eval_sentences": 60}
# --exits: exit heads after the first three stages; the block profile at every resolution (--fast: the largest)
EXITS = {"stages": [0, 1, 2], "width": 64}
EXIT_PHASE = {"name": "exits", "epochs": 3, "lr": 0.05, "subnets_per_step": 2, "exits": True}
EXITS_FULL = {"candidates": 24, "tolerance": 0.02, "block_runs": 10, "all_resolutions": True, "time_images": 2000}
EXITS_FAST = {"candidates": 2, "tolerance": 0.05, "block_runs": 3, "all_resolutions": False, "time_images": 256}


LEDGER = "quickstart-steps.json"


def call_name(function) -> str:
    """A library function's full name (``ofa_pipeline.fit.fit_latency_predictor_from_profile``): what
    a step prints, so a user can call it on its own."""
    return f"{function.__module__}.{function.__qualname__}"


def _plain(value):
    """``value`` as JSON-able data, for the ledger and the printed call (paths as text, an options
    dataclass as its fields)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": type(value).__name__, **{f.name: _plain(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def option_flags(options, rename: dict | None = None) -> list[str]:
    """The console options that give an options dataclass's fields that differ from their defaults:
    ``--field-name value`` (``rename`` maps a field to another flag), a true flag alone, a list as
    several values. Each step prints its console command with them; a test runs each printed command
    and checks that it makes the step's library call."""
    flags = []
    for f in fields(options):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        value = getattr(options, f.name)
        if value == default:
            continue
        flag = (rename or {}).get(f.name, "--" + f.name.replace("_", "-"))
        if value is True:
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags


def heading(label: str, function, command: list[str] | None) -> str:
    """A step's heading: its label, the library function it calls, and the console command that does
    the same on its own."""
    text = f"== {label}" + (f"  [{call_name(function)}]" if function is not None else "")
    return text + (f"\n$ {shlex.join(command)}" if command else "")


def file_digest(path) -> str | None:
    """SHA-256 of a file's bytes (None if it does not exist)."""
    return sha256_hex(path) if Path(path).is_file() else None


def _call_logged(function, arguments: dict, log: str) -> None:
    """In a process of its own: ``function(**arguments)`` with everything it prints in ``log`` (the
    file descriptors too, so a runtime's own messages land there); a named error exits with 2."""
    with open(log, "w") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.exit(run_command(lambda kwargs: function(**kwargs), arguments))


class Steps:
    """Runs the library's stage functions, printing each call and timing each step.

    ``out/quickstart-steps.json`` records, per step, its call (function and
    arguments), the digests of its input and output files and its seconds (added
    up over runs). A step is skipped when its record has the same call and input
    digests and its outputs are still the files it wrote: so a re-run of a
    finished directory refits nothing and keeps the recorded timings, while a
    changed input (a re-profiled device, new evaluations) re-runs the steps that
    depend on it, after deleting the outputs the earlier call wrote (the stages
    append to an existing output, to resume after a kill)."""

    def __init__(self, out: Path):
        self.out, self.path = out, out / LEDGER
        self.timings: dict[str, float] = {}  # this run's seconds per step (0 for a skipped step)
        self.ledger = {"steps": {}, "total_s": 0.0, "runs": 0}
        if self.path.is_file():
            try:
                ledger = json.loads(self.path.read_text())
            except ValueError:
                ledger = None
            if isinstance(ledger, dict) and isinstance(ledger.get("steps"), dict):
                self.ledger.update(ledger)
            else:
                print(f"note: {self.path} is not a step record; every step runs again", flush=True)
        self.ledger["runs"] = int(self.ledger.get("runs", 0)) + 1
        self._total_before = float(self.ledger.get("total_s", 0.0))
        self._started = time.perf_counter()

    @property
    def cumulative(self) -> dict[str, float]:
        """Seconds per step over all runs of this directory."""
        return {label: record["seconds"] for label, record in self.ledger["steps"].items()}

    @property
    def total(self) -> float:
        """Wall seconds of all runs of this directory, this one included so far."""
        return round(self._total_before + time.perf_counter() - self._started, 1)

    @property
    def this_run_total(self) -> float:
        return round(time.perf_counter() - self._started, 1)

    def save(self) -> None:
        from ofa.io import atomic_write_json

        self.ledger["total_s"] = self.total
        atomic_write_json(self.path, self.ledger)

    def skip(self, label: str, reason: str) -> None:
        """A step this run does not need (its output exists): it adds 0 s."""
        print(f"\n== {label}: {reason}", flush=True)
        self.timings[label] = 0.0

    def _pending(self, label: str, function, arguments, inputs=(), outputs=()) -> dict | None:
        """The step's ledger key if it has to run (stale outputs of another call removed, the record
        written so a killed step resumes its own outputs), None if it is done."""
        key = {"call": call_name(function) if function is not None else None, "arguments": _plain(arguments),
               "inputs": {str(p): file_digest(p) for p in inputs}}
        record = self.ledger["steps"].get(label)
        if (outputs and isinstance(record, dict) and record.get("key") == key
                and all(file_digest(p) is not None and file_digest(p) == record.get("outputs", {}).get(str(p))
                        for p in outputs)):
            self.skip(label, f"done in an earlier run, inputs unchanged ({', '.join(str(p) for p in outputs)})")
            return None
        before = record.get("seconds", 0.0) if isinstance(record, dict) else 0.0
        if isinstance(record, dict) and record.get("key") != key:
            # outputs of another call or other inputs: the stages append to (and resume) an existing
            # file, so stale records would mix in; start afresh
            for path in outputs:
                Path(path).unlink(missing_ok=True)
        self.ledger["steps"][label] = {"key": key, "outputs": {}, "seconds": before}
        self.save()
        return key

    def _done(self, label: str, key: dict, outputs, elapsed: float) -> None:
        self.timings[label] = elapsed
        before = self.ledger["steps"][label]["seconds"]
        self.ledger["steps"][label] = {"key": key, "outputs": {str(p): file_digest(p) for p in outputs},
                                       "seconds": round(before + elapsed, 2)}
        self.save()

    def run(self, label: str, function: Callable | None, arguments, inputs=(), outputs=(),
            body: Callable[[], object] | None = None, command: list[str] | None = None) -> None:
        """Call ``function(**arguments)`` (a library stage; or ``body()``, with ``arguments`` only
        naming it in the ledger) unless its ``outputs`` are complete for the same call and ``inputs``
        (see the class). ``command``: the console command that makes the same call, printed."""
        key = self._pending(label, function, arguments, inputs, outputs)
        if key is None:
            return
        print(f"\n{heading(label, function, command)}", flush=True)
        start = time.perf_counter()
        if function is not None:
            function(**arguments)
        else:
            body()
        self._done(label, key, outputs, round(time.perf_counter() - start, 2))

    def run_side_by_side(self, jobs: list[dict]) -> None:
        """Run several steps (``{"label", "function", "arguments", "inputs", "outputs", "command"}``) at
        once, each in its own process, its output in ``out/logs/<label>.log``: for
        steps that time nothing (simulators, evaluation), which would otherwise
        leave a core idle."""
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads forked
        running = []
        for job in jobs:
            key = self._pending(job["label"], job["function"], job["arguments"], job.get("inputs", ()),
                                job.get("outputs", ()))
            if key is None:
                continue
            log = self.out / "logs" / (re.sub(r"[^A-Za-z0-9.-]+", "_", job["label"]).strip("_") + ".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"\n{heading(job['label'] + f' (side by side, output in {log})', job['function'], job['command'])}",
                  flush=True)
            process = context.Process(target=_call_logged, args=(job["function"], job["arguments"], str(log)))
            process.start()
            running.append((job, key, log, process, time.perf_counter()))
        failed = []
        while running:  # each step's seconds end when it ends, whichever order they finish in
            finished = [entry for entry in running if entry[3].exitcode is not None]
            if not finished:
                time.sleep(0.2)
                continue
            for entry in finished:
                running.remove(entry)
                job, key, log, process, start = entry
                process.join()
                if process.exitcode:
                    failed.append(f"step '{job['label']}' failed ({call_name(job['function'])} exited with "
                                  f"{process.exitcode}):\n" + "\n".join(log.read_text().splitlines()[-15:]))
                    continue
                self._done(job["label"], key, job.get("outputs", ()), round(time.perf_counter() - start, 2))
                last = log.read_text().strip().splitlines()[-1] if log.stat().st_size else "done"
                print(f"-- {job['label']}: {last} ({self.timings[job['label']]:.0f} s)", flush=True)
        if failed:
            raise OFAError("\n".join(failed))

    def at_least(self, label: str, seconds: float) -> None:
        """Raise a step's recorded seconds to what the stage itself counted over
        several runs (a training run killed and resumed knows its whole time)."""
        record = self.ledger["steps"].get(label)
        if isinstance(record, dict) and seconds > record["seconds"]:
            record["seconds"] = round(float(seconds), 2)
            self.save()


def run_jobs(steps: Steps, jobs: list[dict], side_by_side: bool) -> None:
    """Run steps given as ``{"label", "function", "arguments", "inputs", "outputs", "command"}``, side by side or
    one after another."""
    if side_by_side:
        steps.run_side_by_side(jobs)
    else:
        for job in jobs:
            steps.run(job["label"], job["function"], job["arguments"], job["inputs"], job["outputs"],
                      command=job["command"])


def train_command(config: Path, out: Path, processes: int) -> list[str]:
    return (["ofa-train-supernet", "--config", str(config), "--out", str(out), "--resume", "--no-progress"]
            + (["--processes", str(processes)] if processes > 1 else []))


def specialize_command(supernet: Path, accuracy: Path, latency: list[Path], targets: list, out: Path,
                       config) -> list[str]:
    """``ofa-specialize`` for one target per (device, budget) pair, with ``config``'s settings."""
    command = ["ofa-specialize", "--supernet", str(supernet), "--accuracy-predictor", str(accuracy)]
    for path in latency:
        command += ["--latency-predictor", str(path)]
    for target in targets:
        ((device, budget),) = target.budgets
        command += ["--device", device, "--latency-ms", repr(float(budget))]
    command += ["--out", str(out), *option_flags(replace(config, trust=type(config.trust)()))]
    return command + (["--accept-untrusted-predictor"] if config.trust.accept_untrusted else [])


def fast_config(config_path: Path, out: Path, settings: dict, transformer: bool) -> Path:
    """The training config shortened for a smoke test (``--fast``)."""
    import yaml

    from ofa.io import atomic_write_text

    config = yaml.safe_load(config_path.read_text())
    if transformer:
        config.setdefault("data", {}).update(train_size=settings["train_size"], val_size=settings["val_size"],
                                             test_size=settings["val_size"])
        steps = settings["steps"]
        config.setdefault("train", {}).update(steps=steps, warmup_steps=steps // 4, eval_every=steps,
                                              checkpoint_every=steps, log_every=steps, batch_size=settings["batch_size"],
                                              eval_sentences=settings["eval_sentences"])
    else:
        for phase in config["phases"]:
            phase["epochs"] = settings["epochs"]
            phase.pop("warmup_epochs", None)
        config.setdefault("data", {}).update(max_train_images=settings["max_train_images"],
                                             calib_images=settings["calib_images"])
        config.setdefault("train", {}).update(log_every=1000, batch_size=settings["batch_size"])
    path = out / "config-fast.yaml"
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


def budgets_for(predictor, space, fractions=(0.05, 0.3), confidence: float | None = LATENCY_CONFIDENCE) -> list[float]:
    """Two latency budgets per device, a tight and a loose one: the latency
    bound (at ``confidence``; None: the point prediction) of the smallest subnet
    plus ``fractions`` of the way to the largest, rounded up to two
    significant digits (so even the tight budget has a subnet under it).

    Budgets spanning the space's own range, rather than quantiles of random
    subnets, reach the region where accuracy has to be given up: random subnets
    are mid-sized, and on a small space most of them leave room for the
    highest resolution, so budgets among them all pick near-top accuracy."""
    from ofa.search.costs import budgets_between
    from ofa_pipeline.specialize import positive_latency

    budgets = budgets_between(space, positive_latency(predictor, confidence), fractions)
    return [round_up(b, 2) for b in budgets]


def round_up(value: float, digits: int) -> float:
    """``value`` rounded up to ``digits`` significant digits."""
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale - 1e-9) / scale


def device_name(text: str) -> str:
    """An argparse type: a registered backend name (with a "did you mean" hint)."""
    from hardware_profiles.backends import list_backends

    return choice(list_backends())(text, "device")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


MIN_LOCAL_BATCH = 16  # below this, each process's BatchNorm statistics get too noisy


def training_processes(config_path: Path, workers: int) -> int:
    """Data-parallel processes for training: one per worker core, while every
    process keeps at least MIN_LOCAL_BATCH images of the batch (and the batch
    splits evenly); the Transformer trainer and GPU runs keep one."""
    from ofa.training.config import load_yaml

    config = load_yaml(config_path)
    device = config.get("device", "auto")
    if device == "cuda" or "phases" not in config:
        return 1
    if device == "auto":
        import torch

        if torch.cuda.is_available():  # "auto" trains on the GPU, one process
            return 1
    batch = int(config.get("train", {}).get("batch_size", 64))
    return max([n for n in range(1, workers + 1) if batch % n == 0 and batch // n >= MIN_LOCAL_BATCH] or [1])


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/quickstart", help="run directory (default %(default)s)")
    p.add_argument("--fast", action="store_true", help="reduced mode: 1 epoch per phase, few architectures")
    p.add_argument("--transformer", action="store_true", help="the Transformer default instead of the CNN")
    p.add_argument("--config", default=None, help="training config (default: mbv3-small-cluttered-digits)")
    p.add_argument("--workers", type=positive_int, default=usable_cores(),
                   help="CPU cores to use (default: all this process may use, %(default)s): training runs that "
                        "many data-parallel processes (at most one per 16 images of the batch), and steps that "
                        "time nothing run side by side")
    p.add_argument("--exits", action="store_true",
                   help="the early-exit pipeline: train exit heads, calibrate, specialise and export a subnet with "
                        "exits on cpu-ort (CNN only)")
    p.add_argument("--devices", nargs="+", default=None, type=device_name,
                   help="backends to specialise for (default: cpu-ort fpga-scalesim, plus mobile-ncnn if installed "
                        "and not --fast)")
    p.add_argument("--precision", action="store_true",
                   help="the mixed-precision pipeline: a supernet with 4/6/8-bit blocks, searched on the bit-serial "
                        "and bit-fusion accelerator models, exported as QDQ ONNX (docs/mixed-precision.md)")
    return p.parse_args(argv)


def check_args(args) -> Path:
    """Everything the quickstart needs, checked before any work: the output
    directory, the training config and the devices. Returns the config path."""
    from hardware_profiles import get_backend
    from ofa.training.config import load_yaml, resolve_config_path

    check_output_path(args.out, kind="dir", name="--out")
    if getattr(args, "exits", False) and (args.transformer or args.devices not in (None, ["cpu-ort"])):
        raise ConfigError("--exits runs the CNN on cpu-ort (the device whose block latencies it measures); leave "
                          "out --transformer and --devices, or give --devices cpu-ort")
    default_config = "transformer-small-digits.yaml" if args.transformer else "mbv3-small-cluttered-digits.yaml"
    config = resolve_config_path(args.config or default_config)
    raw = load_yaml(config)  # a YAML mapping (ConfigError otherwise)
    if getattr(args, "exits", False):
        from ofa.spaces.exits import ExitConfig
        from ofa.training.config import config_space

        space = config_space(raw)
        if space.type_name != "mobilenetv3":
            raise ConfigError(f"--exits trains exit heads on a MobileNetV3 supernet; --config {str(config)!r} "
                              f"trains a {space.type_name!r} space: give a MobileNetV3 config (default "
                              f"{default_config!r}) or leave out --exits")
        try:
            ExitConfig.parse(space, EXITS)
        except ConfigError:
            raise ConfigError(f"--exits puts exit heads after stages {EXITS['stages']}, which needs a space of at "
                              f"least {EXITS['stages'][-1] + 2} stages; --config {str(config)!r} has "
                              f"{space.num_stages}") from None
        from ofa.training.progressive_shrinking import check_config

        check_config(with_exits(raw))  # e.g. an exit phase of its own before other phases
    if args.devices is not None:
        repeated = sorted({d for d in args.devices if args.devices.count(d) > 1})
        if repeated:
            raise ConfigError(f"--devices: {repeated} given more than once; name each device once")
        missing = [d for d in args.devices if not get_backend(d).available()]
        if missing:
            raise ConfigError(f"--devices: {missing} cannot run on this machine (its runtime is not installed); "
                              f"choose among the available backends or install it")
    return config


def run(args) -> dict:
    from hardware_profiles import get_backend
    from ofa.io import atomic_write_json, atomic_write_text
    from ofa.training import load_supernet
    from predictors import TrustRule, load_predictor

    # the library's stages the steps call (each loads torch when it runs)
    from ofa_pipeline.evaluate import EvaluateOptions, evaluate_checkpoint
    from ofa_pipeline.fit import FitOptions, fit_accuracy_predictor_from_evaluations, fit_latency_predictor_from_profile
    from ofa_pipeline.profile import BackendSettings, profile_device
    from ofa_pipeline.specialize import SpecializeConfig, Target, specialize_checkpoint, summary_table
    from ofa_pipeline.train import train_supernet

    transformer = args.transformer
    if transformer:
        settings = TRANSFORMER_FAST if args.fast else TRANSFORMER_FULL
    else:
        settings = FAST if args.fast else FULL
    config = check_args(args)  # before any work
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # SCALE-Sim's per-layer cache for profiling and for verifying the chosen subnets
    os.environ.setdefault("OFA_HW_CACHE", str(out / "cache"))
    steps = Steps(out)

    # 1. train -------------------------------------------------------------------------------------------
    if args.fast:
        config = fast_config(config, out, settings, transformer)
    if getattr(args, "exits", False):
        return run_exits(args, config, out, steps, settings)
    supernet_path = out / "supernet" / "final.pt"
    if supernet_path.is_file():
        steps.skip("1. train the supernet", f"{supernet_path} exists, reusing it")
    else:
        processes = training_processes(config, args.workers)
        steps.run("1. train the supernet", train_supernet,
                  dict(config=config, out=out / "supernet", resume=True, progress=False, processes=processes),
                  inputs=[config], outputs=[supernet_path], command=train_command(config, out / "supernet", processes))
        trained = json.loads((out / "supernet" / "summary.json").read_text())
        steps.at_least("1. train the supernet", trained.get("wall_seconds", 0.0))  # all segments of a resumed run
    supernet = load_supernet(supernet_path)
    space = supernet.space
    space_file = out / "space.json"
    atomic_write_json(space_file, space.to_dict())

    # 2-4. profile, evaluate, fit latency predictors --------------------------------------------------------
    devices = args.devices or ["cpu-ort", "fpga-scalesim"] + (
        ["mobile-ncnn"] if get_backend("mobile-ncnn").available() and not args.fast else [])
    profiles = {device: out / "profiles" / f"{device}.jsonl" for device in devices}
    latency_paths = {device: out / "predictors" / f"{device}.skops" for device in devices}
    latency_fits = {}  # a latency predictor per device
    for device, profile in profiles.items():
        # the default label: drift-corrected thread CPU time for timed backends, exact latency for simulators
        options = FitOptions(cv=3, model="lut") if args.fast else FitOptions()
        latency_fits[device] = {"label": f"3. fit the {device} latency predictor",
                                "function": fit_latency_predictor_from_profile,
                                "arguments": dict(profile=profile, out=latency_paths[device], options=options),
                                "command": ["ofa-fit-predictor", "--profile", str(profile), "--out",
                                            str(latency_paths[device]), *option_flags(options)],
                                "inputs": [profile],
                                "outputs": [latency_paths[device], latency_paths[device].with_suffix(".json")]}
    untimed = []  # steps that time nothing: with a free core they run side by side
    for device, profile in profiles.items():
        timed = not get_backend(device).simulated
        backend_settings = BackendSettings(
            runs=settings["runs"] if timed else None, warmup=settings["warmup"] if timed else None,
            cache_dir=Path(os.environ["OFA_HW_CACHE"]) / "scalesim" if device == "fpga-scalesim" else None)
        job = {"label": f"2. profile {device}", "function": profile_device,
               "arguments": dict(space=space_file, backend=device, out=profile, num_archs=settings["profile_archs"],
                                 settings=backend_settings, progress=False),
               "command": ["ofa-profile-device", "--space", str(space_file), "--backend", device, "--out", str(profile),
                           "--num-archs", str(settings["profile_archs"]), *option_flags(backend_settings),
                           "--no-progress"],
               "inputs": [space_file], "outputs": [profile]}
        if timed:  # its clock is the measurement: nothing else runs meanwhile; its fit joins the untimed steps
            steps.run(job["label"], job["function"], job["arguments"], job["inputs"], job["outputs"],
                      command=job["command"])
            untimed.append(latency_fits.pop(device))
        else:
            untimed.append(job)
    evaluations = out / "evaluations.jsonl"
    count = settings["eval_archs"]
    if transformer:  # validation loss on a few hundred sentences
        archs = ["largest", "smallest", f"random:{count}"]
        evaluate_options = EvaluateOptions(sentences=settings["eval_sentences"])
    else:
        # half uniform draws, half spread over MACs: the tight budgets search among the smallest subnets,
        # which uniform draws rarely reach
        archs = ["largest", "smallest", f"random:{count - count // 2}", f"stratified:{count // 2}"]
        evaluate_options = EvaluateOptions(calib_images=settings["calib_images"])
    untimed.append({"label": "4. evaluate subnets", "function": evaluate_checkpoint, "inputs": [supernet_path],
                    "outputs": [evaluations],
                    "arguments": dict(checkpoint=supernet_path, out=evaluations, archs=archs, options=evaluate_options,
                                      progress=False),
                    "command": ["ofa-evaluate", "--supernet", str(supernet_path), "--out", str(evaluations),
                                "--archs", *archs, *option_flags(evaluate_options)]})
    run_jobs(steps, untimed, side_by_side=args.workers > 1 and not transformer)
    fits = list(latency_fits.values())  # the simulators' latency predictors, after their profiles
    target = "loss" if transformer else "top1"
    accuracy_path = out / "predictors" / f"{target}.skops"
    accuracy_options = FitOptions(cv=3, model="gbr") if args.fast else FitOptions()
    fits.append({"label": f"4. fit the {target} predictor", "function": fit_accuracy_predictor_from_evaluations,
                 "arguments": dict(evaluations=evaluations, space=space_file, out=accuracy_path, target=target,
                                   options=accuracy_options),
                 "command": ["ofa-fit-predictor", "--evaluations", str(evaluations), "--space", str(space_file),
                             "--out", str(accuracy_path), "--target", target, *option_flags(accuracy_options)],
                 "inputs": [evaluations, space_file], "outputs": [accuracy_path, accuracy_path.with_suffix(".json")]})
    run_jobs(steps, fits, side_by_side=args.workers > 1)  # fitting times nothing

    # 5. specialise -----------------------------------------------------------------------------------------
    budgets, labels, targets = {}, {}, []
    for device, path in latency_paths.items():
        predictor = load_predictor(path)
        labels[device] = predictor.label.name
        budgets[device] = budgets_for(predictor, space)
        targets += [Target(((device, budget),)) for budget in budgets[device]]
    # the over-budget picks the closed loop cannot fix are reported in the table, not a failed step; with
    # --fast (one epoch per phase) the accuracies are close to noise, a smoke test ranks them anyway
    config = SpecializeConfig(population=settings["population"], generations=settings["generations"],
                              pareto_generations=settings["pareto_generations"],
                              calib_images=settings["calib_images"], latency_confidence=LATENCY_CONFIDENCE,
                              int8=settings["int8"], trust=TrustRule(accept_untrusted=args.fast))
    steps.run("5. specialise, export, verify", specialize_checkpoint,
              dict(supernet_path=supernet_path, accuracy_predictor_path=accuracy_path,
                   latency_predictor_paths=list(latency_paths.values()), targets=targets, out_dir=out / "deploy",
                   config=config),
              inputs=[supernet_path, accuracy_path, *latency_paths.values()], outputs=[out / "deploy" / "summary.json"],
              command=specialize_command(supernet_path, accuracy_path, list(latency_paths.values()), targets,
                                         out / "deploy", config))

    # 6. report -----------------------------------------------------------------------------------------------
    rows = json.loads((out / "deploy" / "summary.json").read_text())
    table = summary_table(rows)
    # timings add up over the runs of this directory (a skipped step adds 0); this run's beside them
    timings = {**steps.cumulative, **{k: v for k, v in steps.timings.items() if k not in steps.cumulative}}
    total = steps.total
    report = {"mode": "fast" if args.fast else "full", "model": "transformer" if transformer else "cnn",
              "settings": settings, "devices": devices,
              "budgets_ms": budgets, "latency_labels": labels,
              "timings_s": timings, "total_s": total, "runs": steps.ledger["runs"],
              "this_run": {"timings_s": steps.timings, "total_s": steps.this_run_total},
              "rows": rows}
    steps.save()
    atomic_write_json(out / "quickstart.json", report)
    label_text = ", ".join(f"{d}: {label}" for d, label in labels.items())
    accuracy = ("token accuracy and loss on validation sentences" if transformer
                else "top-1 on the validation split after BN re-calibration")
    text = (f"# Quickstart ({report['model']}, {report['mode']} mode)\n\nLatency labels ({label_text}); accuracy: "
            f"{accuracy}; loyalty: agreement with the largest subnet.\n\n{table}\n\n"
            f"Pareto plots: `deploy/<target>/pareto_<device>.png`. Wall time: {total} s "
            f"({', '.join(f'{k}: {v} s' for k, v in timings.items())})"
            + (f" over {report['runs']} runs of this directory" if report["runs"] > 1 else "") + ".\n")
    atomic_write_text(out / "quickstart.md", text)
    print(f"\n== 6. result ({label_text})\n{table}\n\nwall time {total} s; report {out / 'quickstart.md'}")
    return report


def with_exits(config: dict, fast: bool = False) -> dict:
    """``config`` with exit heads and an exit phase after its phases (the standard recipe's when it
    names none: the exit phase alone would train heads on an untrained network)."""
    from ofa.training.progressive_shrinking import DEFAULT_PHASES

    phase = dict(EXIT_PHASE, epochs=1) if fast else dict(EXIT_PHASE)
    phases = config.get("phases") or [dict(p) for p in DEFAULT_PHASES]
    return {**config, "phases": list(phases) + [phase], "exits": dict(EXITS)}


def exits_config(config_path: Path, out: Path, fast: bool) -> Path:
    """The training config with exit heads and an exit phase after its phases."""
    import yaml

    from ofa.io import atomic_write_text

    config = with_exits(yaml.safe_load(config_path.read_text()), fast)
    path = out / "config-exits.yaml"
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


def run_exits(args, config: Path, out: Path, steps: Steps, settings: dict) -> dict:
    """The early-exit pipeline (``--exits``): train with exits, block profile, block-sum
    predictor, specialise with calibrated thresholds, export and time."""
    from ofa.io import atomic_write_json, atomic_write_text
    from ofa.search.costs import budgets_between
    from ofa.training import load_supernet
    from predictors import load_predictor

    # the library's stages the steps call
    from ofa_pipeline.block_fitting import BlockFitOptions, fit_block_or_transfer
    from ofa_pipeline.exits import ExitSearchOptions, specialize_exits_checkpoint
    from ofa_pipeline.profile import BackendSettings, profile_device_blocks
    from ofa_pipeline.train import train_supernet

    exit_settings = EXITS_FAST if args.fast else EXITS_FULL
    config = exits_config(config, out, args.fast)
    supernet_path = out / "supernet" / "final.pt"
    processes = training_processes(config, args.workers)
    steps.run("1. train the supernet with exits", train_supernet,
              dict(config=config, out=out / "supernet", resume=True, progress=False, processes=processes),
              inputs=[config], outputs=[supernet_path], command=train_command(config, out / "supernet", processes))
    supernet = load_supernet(supernet_path)
    space = supernet.space
    space_file = out / "space.json"
    atomic_write_json(space_file, space.to_dict())
    blocks = out / "profiles" / "cpu-ort.blocks.jsonl"
    block_settings = BackendSettings(runs=exit_settings["block_runs"], warmup=settings["warmup"])
    resolutions = None if exit_settings["all_resolutions"] else [max(space.resolutions)]
    steps.run("2. profile cpu-ort block by block", profile_device_blocks,
              dict(space=space_file, backend="cpu-ort", out=blocks, settings=block_settings, resolutions=resolutions,
                   progress=False),
              inputs=[space_file], outputs=[blocks],
              command=["ofa-profile-device", "--blocks", "--space", str(space_file), "--backend", "cpu-ort", "--out",
                       str(blocks), *option_flags(block_settings), "--no-progress"]
              + (["--resolutions", *map(str, resolutions)] if resolutions else []))
    predictor_path = out / "predictors" / "cpu-ort.blocks.skops"
    steps.run("3. fit the cpu-ort block-sum predictor", fit_block_or_transfer,
              dict(options=BlockFitOptions(blocks=str(blocks)), out=predictor_path,
                   plot_path=predictor_path.with_suffix(".png"), json_path=predictor_path.with_suffix(".json")),
              inputs=[blocks], outputs=[predictor_path, predictor_path.with_suffix(".json")],
              command=["ofa-fit-predictor", "--blocks", str(blocks), "--out", str(predictor_path)])
    predictor = load_predictor(predictor_path)
    # the expected-latency budget halfway between the smallest and the largest subnet without exits; the
    # worst case may exceed it by half
    (expected,) = budgets_between(space, lambda genes: predictor.predict_genes(genes), (0.5,))
    expected = round_up(expected, 2)
    worst = round_up(1.5 * expected, 2)
    deploy = out / "deploy-exits"
    exit_options = ExitSearchOptions(tolerance=exit_settings["tolerance"], candidates=exit_settings["candidates"],
                                     calib_images=settings["calib_images"], time=True,
                                     time_images=exit_settings["time_images"])
    steps.run("4. specialise with exits, calibrate, export, time", specialize_exits_checkpoint,
              dict(supernet_path=supernet_path, latency_predictor_path=predictor_path, out_dir=deploy,
                   expected_latency_ms=expected, worst_latency_ms=worst, options=exit_options),
              inputs=[supernet_path, predictor_path], outputs=[deploy / "result.json"],
              command=["ofa-specialize-exits", "--supernet", str(supernet_path), "--latency-predictor",
                       str(predictor_path), "--out", str(deploy), "--expected-latency-ms", repr(expected),
                       "--worst-latency-ms", repr(worst),
                       *option_flags(exit_options, rename={"confidence": "--measure"})])
    result = json.loads((deploy / "result.json").read_text())
    chosen, timings = result["chosen"], {**steps.cumulative}
    test, latency = chosen["test"], chosen["predicted_latency_ms"]
    lines = [f"# Quickstart with early exits ({'fast' if args.fast else 'full'} mode)", "",
             f"Exits after stages {result['exits']['stages']}; threshold {chosen['threshold']:.4g} "
             f"({result['measure']}), calibrated for at most {100 * result['tolerance']:g}% disagreement with the full "
             f"subnet at probability {1 - result['delta']:g}.", "",
             "| | value |", "|---|---|",
             f"| budgets (expected / worst case, {result['latency_label']}) | {expected:g} / {worst:g} |",
             f"| predicted latency: expected / worst case / without exits | {latency['expected']:.3f} / "
             f"{latency['worst_case']:.3f} / {latency['static']:.3f} |",
             f"| test top-1: adaptive / full subnet | {test['top1_adaptive']:.2f} / {test['top1_full']:.2f} |",
             f"| exit distribution (test) | {', '.join(f'{100 * p:.1f}%' for p in test['exit_distribution'])} |"]
    for batch, entry in result.get("measured", {}).items():
        lines.append(f"| measured ms per image, batch {batch}: exits / same subnet static | "
                     f"{entry['exits_ms_per_image']:.3f} / {entry['same_static_ms_per_image']:.3f} |")
    spent = ", ".join(f"{k}: {v} s" for k, v in timings.items())
    text = "\n".join(lines) + f"\n\nWall time {steps.total} s ({spent}).\n"
    report = {"mode": "fast" if args.fast else "full", "model": "cnn-exits", "budgets_ms":
              {"expected": expected, "worst_case": worst}, "timings_s": timings, "total_s": steps.total,
              "runs": steps.ledger["runs"], "this_run": {"timings_s": steps.timings, "total_s": steps.this_run_total},
              "result": result}
    steps.save()
    atomic_write_json(out / "quickstart.json", report)
    atomic_write_text(out / "quickstart.md", text)
    print(f"\n== 5. result\n{text}")
    return report


def check_precision_args(args) -> None:
    """``--precision`` runs its own configuration: the options that choose another are refused."""
    from ofa_pipeline.mixed_precision import BACKENDS

    given = [flag for flag, value in (("--transformer", args.transformer), ("--exits", getattr(args, "exits", False)),
                                      ("--config", args.config), ("--devices", args.devices)) if value]
    if given:
        raise ConfigError(f"--precision runs its own configuration (mbv3-small with 4/6/8-bit blocks, priced "
                          f"on {', '.join(BACKENDS)}); leave out {', '.join(given)}")


def run_precision(args) -> dict:
    from ofa.training.config import resolve_config_path
    from ofa_pipeline.mixed_precision import FULL_CONFIG, run_mixed_precision

    check_precision_args(args)  # before any work
    processes = training_processes(resolve_config_path(FULL_CONFIG), args.workers)
    return run_mixed_precision(args.out, fast=args.fast, processes=processes)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run_precision if args.precision else run, args)


if __name__ == "__main__":
    sys.exit(main())
