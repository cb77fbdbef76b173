#!/usr/bin/env python
"""Early exits on the default image task: accuracy against measured latency on cpu-ort.

Starting from a finished supernet run without exits (the quickstart's), the
benchmark

1. adds exit heads after stages 0, 1 and 2 and trains them
   (``seed_exit_phase``: the exit phase alone, main path frozen);
2. profiles cpu-ort block by block (every resolution) and fits a block-sum
   latency predictor;
3. for each expected-latency budget and each tolerance, searches the subnet,
   the subset of exits it keeps and its calibrated threshold
   (``ofa_pipeline.exits.specialize_exits``; the worst case may exceed the
   budget by half), exports one ONNX graph per segment, the chosen subnet
   without exits and the best static subnet under the budget;
4. times the three on onnxruntime (one thread) at batch 1 and batch 32, in turn
   batch by batch, on test images, and records the test accuracies and the exit
   distributions.

    nice -n 19 python benchmarks/early_exit.py --supernet runs/quickstart/supernet/final.pt

Steps 1-2 are skipped when their outputs exist in ``--work``.

``--family transformer``: per-token exits (CALM) on the default Transformer task
(:func:`transformer_benchmark`): exact match and BLEU against the mean number of
decoder layers per generated token, at several tolerances, against the same
subnet without exits and the static subnets with fewer decoder layers.

    nice -n 19 python benchmarks/early_exit.py --family transformer \
        --supernet runs/tr-digits-bench/supernet/final.pt
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _timing import environment, save

EXITS = {"stages": [0, 1, 2], "width": 64}
TRANSFORMER_EXITS = {"layers": [0, 1]}
DEFAULTS = {"image": {"supernet": "runs/quickstart/supernet/final.pt", "work": "runs/early-exit-bench",
                      "out": "benchmarks/results/early_exit.json"},
            "transformer": {"supernet": "runs/tr-digits-bench/supernet/final.pt",
                            "work": "runs/early-exit-transformer",
                            "out": "benchmarks/results/early_exit_transformer.json"}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=sorted(DEFAULTS), default="image")
    parser.add_argument("--supernet", help="a finished supernet run without exits (default: the family's)")
    parser.add_argument("--work", help="where the exit phase and the profiles go (default: the family's)")
    parser.add_argument("--exit-epochs", type=int, default=3)
    parser.add_argument("--exit-steps", type=int, default=400, help="transformer: steps of the exit phase")
    parser.add_argument("--exit-lr", type=float, default=0.0005, help="transformer: learning rate of the exit phase")
    parser.add_argument("--time-sentences", type=int, default=100,
                        help="transformer: test sentences decoded one at a time for the measured CPU time")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.02, 0.05])
    parser.add_argument("--budget-fractions", type=float, nargs="+", default=[0.25, 0.5],
                        help="expected-latency budgets: the smallest static subnet's latency plus these fractions "
                             "of the way to the largest's")
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--time-images", type=int, default=600, help="test images timed at batch 1")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.family].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from ofa.errors import ConfigError
    from ofa.search.exits import check_calibration_args

    for tolerance in args.tolerances:  # refused now, not after minutes of exit training and profiling
        check_calibration_args(tolerance, args.delta, "consistency", "maxprob")
    if args.time_sentences < 1:
        raise ConfigError(f"--time-sentences must be >= 1 (test sentences timed one at a time), got "
                          f"{args.time_sentences}")
    torch.set_num_threads(1)
    command = "nice -n 19 python benchmarks/early_exit.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.family == "transformer":
        return transformer_benchmark(args, command)
    work = Path(args.work)
    started = time.perf_counter()

    from ofa.search.costs import budgets_between
    from ofa.training import load_supernet
    from ofa.training.config import load_yaml
    from ofa.training.progressive_shrinking import DEFAULT_EXIT_PHASE, ProgressiveShrinkingTrainer, seed_exit_phase
    from ofa_pipeline.deploy import checkpoint_data
    from ofa_pipeline.exits import ExitEvaluator, export_chosen, measure_latency, specialize_exits
    from predictors.blocks import fit_block_predictor

    timings = {}
    final = work / "final.pt"
    if not final.is_file():
        start = time.perf_counter()
        if not (work / "last.pt").is_file():
            seed_exit_phase(args.supernet, work, EXITS, dict(DEFAULT_EXIT_PHASE, epochs=args.exit_epochs))
        ProgressiveShrinkingTrainer(load_yaml(work / "config.yaml"), work, resume=True).run()
        timings["exit_phase_s"] = round(time.perf_counter() - start, 1)
    blocks = work / "cpu-ort.blocks.jsonl"
    if not blocks.is_file():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ofa_pipeline.commands.profile_device", "--space", str(final),
                        "--backend", "cpu-ort", "--blocks", "--runs", "10", "--warmup", "2", "--out", str(blocks),
                        "--no-progress"], check=True)
        timings["block_profile_s"] = round(time.perf_counter() - start, 1)
    # the steps of an earlier run whose outputs are reused keep the time they took
    ledger = work / "timings.json"
    if timings:
        timings = {**(json.loads(ledger.read_text()) if ledger.is_file() else {}), **timings}
        ledger.write_text(json.dumps(timings))
    elif ledger.is_file():
        timings = {**json.loads(ledger.read_text()), "reused": True}
    predictor = fit_block_predictor(blocks)
    supernet = load_supernet(final)
    space = supernet.space
    data = checkpoint_data(final)
    evaluator = ExitEvaluator(supernet, data, 1000)
    test_labels = evaluator.labels("test")
    rows = []
    for fraction in args.budget_fractions:
        (budget,) = budgets_between(space, predictor.predict_genes, (fraction,))
        for tolerance in args.tolerances:
            start = time.perf_counter()
            report = specialize_exits(supernet, data, predictor, budget, 1.5 * budget, tolerance, args.delta,
                                      candidates=args.candidates, evaluator=evaluator)
            directory = work / f"deploy-{fraction:g}-{tolerance:g}"
            files = export_chosen(evaluator, report, directory)
            chosen = report["chosen"]
            arch = space.parse(chosen["arch"])
            images = evaluator.images("test", arch.resolution)[0].numpy()
            statics = {"same_static": files["same-static"]}
            if "static" in files:
                statics["best_static"] = files["static"]
                static_arch = space.parse(report["static"]["arch"])
                if static_arch.resolution != arch.resolution:  # each network times on its own input size
                    statics.pop("best_static")
            measured = {"1": measure_latency(files["exits"], statics, images[:args.time_images],
                                             batch_sizes=(1,))["1"],
                        str(args.batch): measure_latency(files["exits"], statics, images,
                                                         batch_sizes=(args.batch,))[str(args.batch)]}
            # the cost of running as segments: the same graphs with threshold 1 (nobody leaves early)
            never = measure_latency(files["exits"], {"same_static": files["same-static"]}, images[:args.time_images],
                                    thresholds=1.0, batch_sizes=(1,))["1"]
            measured["1"]["never_exit_ms_per_image"] = never["exits_ms_per_image"]
            measured["1"]["never_exit_same_static_ms_per_image"] = never["same_static_ms_per_image"]
            if "static" in report and "best_static" not in statics:
                static_images = evaluator.images("test", space.parse(report["static"]["arch"]).resolution)[0].numpy()
                for batch, subset in (("1", static_images[:args.time_images]), (str(args.batch), static_images)):
                    alone = measure_latency(files["exits"], {"best_static": files["static"]}, subset,
                                            batch_sizes=(int(batch),))[batch]
                    measured[batch]["best_static_ms_per_image"] = alone["best_static_ms_per_image"]
                    measured[batch]["best_static_timed_separately"] = True
            all_test = [evaluator.logits(arch, "test")[i] for i in chosen["exit_indices"] + [-1]]
            per_exit = [float(100 * np.mean(x.argmax(1) == test_labels)) for x in all_test]
            rows.append({"budget_fraction": fraction, "expected_budget_ms": budget, "worst_budget_ms": 1.5 * budget,
                         "tolerance": tolerance, "threshold": chosen["threshold"], "arch": chosen["arch"],
                         "exit_stages": report["exits"]["stages"],
                         "predicted_ms": chosen["predicted_latency_ms"], "within_budgets": chosen["within_budgets"],
                         "test": chosen["test"], "test_top1_per_exit": per_exit,
                         "calibration": chosen["calibration"],
                         "best_static": report.get("static"), "measured": measured,
                         "searched": report["searched"], "seconds": round(time.perf_counter() - start, 1)})
            t = chosen["test"]
            print(f"budget {budget:.3f} tolerance {tolerance:g}: exits {report['exits']['stages']}, threshold "
                  f"{chosen['threshold']:.3g}, top-1 "
                  f"{t['top1_adaptive']:.2f} (full {t['top1_full']:.2f}, best static "
                  f"{report.get('static', {}).get('test_top1', float('nan')):.2f}); batch 1 ms/image exits "
                  f"{measured['1']['exits_ms_per_image']:.3f} vs same static {measured['1']['same_static_ms_per_image']:.3f}"
                  f"; batch {args.batch} {measured[str(args.batch)]['exits_ms_per_image']:.3f} vs "
                  f"{measured[str(args.batch)]['same_static_ms_per_image']:.3f}", flush=True)
    result = {"command": command, "environment": environment(), "supernet": args.supernet, "exits": EXITS,
              "latency_label": predictor.label.name, "delta": args.delta, "timings": timings,
              "total_seconds": round(time.perf_counter() - started, 1), "rows": rows,
              "note": ("ms per image on onnxruntime CPU, one thread, each graph timed in turn batch by batch on "
                       "test images; 'exits' is the segment runner (Python between segments included)")}
    save(result, args.out)
    return 0


def transformer_benchmark(args, command: str) -> int:
    """Per-token exits on the default Transformer task (numbers as digits -> French words).

    1. exits after decoder layers 0 and 1 are added to the finished supernet run ``--supernet`` and
       trained for ``--exit-steps`` steps (CALM's weighted per-layer losses with self-distillation);
    2. for two subnets with three decoder layers, the threshold is calibrated at each tolerance
       (sequence risk: 1 - exact match against the full subnet, delta ``--delta``) on a random half of
       the validation and test numbers pooled, and the other half is decoded with exits. Pooled,
       because the guarantee assumes calibration and use to be drawn from one distribution, and the
       two splits are not: each comes from its own held-out range of thousands blocks;
    3. cpu-ort measures the decode-workload blocks these subnets run (with the exit checks and the
       state propagation), a block-sum predictor prices the expected and worst-case latency of a
       sentence, and the CPU time of greedy decoding in PyTorch (one sentence at a time, one thread)
       is measured with exits and without."""
    from _timing import time_alternately

    from hardware_profiles import get_backend, profile_blocks
    from hardware_profiles.protocol import MeasurementProtocol
    from ofa.data.text import detokenize, pad_batch
    from ofa.evaluation import translation_scores
    from ofa.models.transformer import greedy_decode
    from ofa.models.transformer_exits import greedy_decode_exits, sequence_losses
    from ofa.search.transformer_exits import calibrate_decoder_threshold, decode_in_batches
    from ofa.spaces.transformer_exits import DecoderExitConfig, decode_exit_blocks
    from ofa.training.config import load_yaml
    from ofa.training.progressive_shrinking import seed_exit_phase
    from ofa.training.transformer import TransformerTrainer, load_trained
    from predictors.blocks import fit_block_predictor
    from predictors.exits import decoder_exit_latencies, expected_latency

    work = Path(args.work)
    started = time.perf_counter()
    final = work / "final.pt"
    if not final.is_file():
        if not (work / "last.pt").is_file():
            seed_exit_phase(args.supernet, work, TRANSFORMER_EXITS, {"steps": args.exit_steps, "lr": args.exit_lr})
        TransformerTrainer(load_yaml(work / "config.yaml"), work, resume=True).run()
    training = json.loads((work / "summary.json").read_text())
    model, data = load_trained(final)
    before, _ = load_trained(args.supernet)
    space = model.space
    exits = DecoderExitConfig.parse(space, TRANSFORMER_EXITS)
    held_out = data.encode("val")[0] + data.encode("test")[0]
    held_out_references = data.references("val") + data.references("test")
    order = np.random.default_rng(0).permutation(len(held_out))
    calibration_rows, test_rows = order[:len(order) // 2], order[len(order) // 2:]
    calibration_src = pad_batch([held_out[i] for i in calibration_rows])
    test_src = pad_batch([held_out[i] for i in test_rows])
    references = [held_out_references[i] for i in test_rows]

    def scores(tokens) -> dict:
        hypotheses = [detokenize(data.tgt_vocab.decode(row), data.level) for row in tokens.tolist()]
        return {k: round(v, 2) for k, v in translation_scores(hypotheses, references).items()}

    def with_depth(arch, layers: int):
        fields = arch.to_dict()
        for key in ("decoder_ffn_dims", "decoder_self_heads", "decoder_cross_heads", "decoder_cross_layers"):
            fields[key] = (list(fields[key]) * 3)[:layers]
        return space.parse({**fields, "decoder_layers": layers})

    subnets = {"largest": space.largest(), "small-3-layer-decoder": with_depth(space.smallest(), 3)}
    # the lengths of the latency model: the test split's mean source and output lengths
    full_outputs = {name: decode_in_batches(model.extract(arch).eval(), test_src) for name, arch in subnets.items()}
    source_length = int(round(float(test_src.ne(0).sum(1).double().mean())))
    target_length = int(round(float(next(iter(full_outputs.values())).ne(0).sum(1).double().mean())))
    decode_space = space.replace(workload="decode")  # the workload is not part of the fingerprint
    lengths = {"source_length": source_length, "target_length": target_length}
    needed = {}
    for arch in subnets.values():
        for blocks in decode_exit_blocks(decode_space, exits, arch, **lengths) + [
                decode_space.blocks(with_depth(arch, n), **lengths) for n in (1, 2, 3)]:
            needed.update({block.key: block for _, block in blocks})
    profile_path = work / "cpu-ort.decode.blocks.jsonl"
    start = time.perf_counter()
    backend = get_backend("cpu-ort", threads=1, protocol=MeasurementProtocol(warmup=2, runs=10))
    profile_blocks(decode_space, backend, profile_path, blocks=list(needed.values()), progress=False)
    profile_seconds = round(time.perf_counter() - start, 1)
    predictor = fit_block_predictor(profile_path, space=decode_space)

    rows = []
    for name, arch in subnets.items():
        static = model.extract(arch).eval()
        full = full_outputs[name]
        latency = decoder_exit_latencies(predictor, decode_space, exits, arch, **lengths)
        baselines = {f"{n}-layer decoder": {"layers": n, **scores(decode_in_batches(
            model.extract(with_depth(arch, n)).eval(), test_src)), "predicted_ms": decoder_exit_latencies(
            predictor, decode_space, exits, with_depth(arch, n), **lengths)["static"]} for n in (1, 2)}
        baselines["before the exit phase"] = {"layers": 3, **scores(decode_in_batches(before.extract(arch).eval(),
                                                                                     test_src))}
        full_scores = scores(full)
        print(f"{name}: full subnet (3 layers per token) {full_scores}; {baselines}", flush=True)
        for tolerance in args.tolerances:
            start = time.perf_counter()
            calibration = calibrate_decoder_threshold(static, calibration_src, tolerance, args.delta)
            threshold = calibration.threshold
            decoded = decode_in_batches(static, test_src, threshold)
            distribution = decoded.exit_distribution()
            subset = [test_src[i:i + 1, :int(test_src[i].ne(0).sum())] for i in range(args.time_sentences)]
            timed = time_alternately({
                "exits": lambda: [greedy_decode_exits(static, src, threshold) for src in subset],
                "static": lambda: [greedy_decode(static, src) for src in subset]}, repeats=3, warmup=1)
            row = {"subnet": name, "arch": arch.to_dict(), "tolerance": tolerance, "delta": args.delta,
                   "threshold": threshold, "calibration": calibration.to_dict(),
                   "test": {"adaptive": scores(decoded.tokens), "full": full_scores,
                            "disagreement_with_full": float(sequence_losses(decoded.tokens, full).mean()),
                            "mean_layers": round(decoded.mean_layers(), 3), "exit_distribution": distribution},
                   "baselines": baselines,
                   "predicted_ms": {"expected": expected_latency(distribution, latency["cumulative"]),
                                    "worst_case": latency["worst_case"], "static": latency["static"],
                                    "per_exit": latency["cumulative"]},
                   "measured_cpu_ms_per_sentence": {k: v["cpu_ms"] / len(subset) for k, v in timed.items()},
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            t, p, m = row["test"], row["predicted_ms"], row["measured_cpu_ms_per_sentence"]
            print(f"{name} tolerance {tolerance:g}: threshold {threshold:.4g}, exact match "
                  f"{t['adaptive']['exact_match']}"
                  f" (full {full_scores['exact_match']}), BLEU {t['adaptive']['bleu']} (full {full_scores['bleu']}),"
                  f" {t['mean_layers']} layers/token, exits {[round(x, 3) for x in distribution]}, predicted "
                  f"{p['expected']:.3f} / worst {p['worst_case']:.3f} / static {p['static']:.3f} ms, measured "
                  f"{m['exits']:.2f} vs {m['static']:.2f} ms/sentence", flush=True)
    result = {"command": command, "environment": environment(), "supernet": args.supernet, "exits": TRANSFORMER_EXITS,
              "exit_phase": {"steps": args.exit_steps, "lr": args.exit_lr,
                             "cpu_seconds": training["cpu_seconds_this_process"],
                             "wall_seconds": training["seconds_this_process"],
                             "validation": training["history"][-2:]},
              "latency_model": {"source_length": source_length, "target_length": target_length,
                                "label": predictor.label.name, "blocks_measured": len(needed),
                                "block_profile_seconds": profile_seconds},
              "total_seconds": round(time.perf_counter() - started, 1), "rows": rows,
              "note": ("the validation and test splits (500 numbers each, from two held-out ranges) pooled and "
                       "halved at random: calibration on one half, every figure on the other; predicted ms: "
                       "block-sum predictor of cpu-ort decode blocks (one thread) "
                       "for a sentence of the mean lengths; measured: process CPU time of PyTorch greedy decoding, "
                       "one sentence at a time, one thread")}
    save(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
