"""Differentiable search: the relaxed latency term, the mixture forward on the supernet's
weights, DARTS's second-order approximation, YOSO's pruning, and ``specialize --strategy
differentiable`` end to end on the built-in digits."""

import json

import numpy as np
import pytest
import torch

from conftest import randomize_batchnorm
from hardware_profiles import read_profile
from ofa.errors import ConfigError
from ofa.search import Constraint, Objective, SearchProblem, SyntheticObjectives, cost_function
from ofa.search.differentiable import (ArchitectureParameters, DifferentiableConfig, budget_term,
                                       differentiable_search, finite_difference_hvp, unrolled_arch_gradient)
from ofa.search.relaxation import cost_relaxation
from ofa.spaces import get_space
from ofa.supernets import create_supernet
from ofa.supernets.relaxed import RelaxedMobileNetV3, mixed_block
from predictors.blocks import fit_block_predictor
from predictors.relaxed import relaxed_latency

BLOCKS = "hardware_profiles/data/blocks/mbv3-small_cpu-ort.jsonl"


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3-small")


@pytest.fixture(scope="module")
def block_predictors(space):
    profile = read_profile(BLOCKS)
    plain = fit_block_predictor(profile, space=space)
    genes = space.sample_genes(20, np.random.default_rng(3))
    # a network-level correction (c0 + c1 * block sum + c2 * blocks) must carry over too
    corrected = fit_block_predictor(profile, (genes, 1.3 * plain.predict_genes(genes) + 0.05), space=space,
                                    correction="linear")
    return plain, corrected


def one_hot_rows(space, n=12, seed=0):
    rng = np.random.default_rng(seed)
    genes = space.normalize_genes(space.sample_genes(n, rng), rng)
    return np.concatenate([genes, space.to_genes([space.smallest(), space.largest()])])


def test_expected_latency_is_the_block_sum_prediction_when_one_hot(space, block_predictors):
    genes = one_hot_rows(space)
    for predictor in block_predictors:
        relaxation = relaxed_latency(predictor)
        assert relaxation.exact
        expected = [float(relaxation.expected(relaxation.one_hot(row))) for row in genes]
        np.testing.assert_allclose(expected, predictor.predict_genes(genes), rtol=1e-10)
    macs = cost_relaxation(space, "macs")
    np.testing.assert_allclose([float(macs.expected(macs.one_hot(row))) for row in genes],
                               cost_function(space, "macs")(genes), rtol=1e-12)
    # stage depths decide which blocks run: the expectation over depth is the mean over the depths' networks
    b = space.num_blocks
    row = space.to_genes(space.largest())[0]
    probs = macs.one_hot(row)
    probs[2 * b] = torch.full((len(space.depths),), 1.0 / len(space.depths), dtype=torch.float64)
    rows = np.repeat(row[None], len(space.depths), axis=0)
    rows[:, 2 * b] = np.arange(len(space.depths))
    rows = space.normalize_genes(rows, np.random.default_rng(0))
    assert float(macs.expected(probs)) == pytest.approx(float(np.mean(macs(rows))), rel=1e-12)


def test_expected_latency_gradient_matches_finite_differences(space, block_predictors):
    relaxation = relaxed_latency(block_predictors[1])
    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn(int(c), generator=generator, dtype=torch.float64, requires_grad=True)
              for c in space.choice_counts]

    def value(values):
        return relaxation.expected([torch.softmax(v, 0) for v in values])

    grads = torch.autograd.grad(value(logits), logits)
    step = 1e-6
    for g, (v, grad) in enumerate(zip(logits, grads)):
        for i in range(len(v)):
            plus = [x.detach().clone() for x in logits]
            minus = [x.detach().clone() for x in logits]
            plus[g][i] += step
            minus[g][i] -= step
            numeric = (float(value(plus)) - float(value(minus))) / (2 * step)
            assert float(grad[i]) == pytest.approx(numeric, rel=1e-5, abs=1e-9), (g, i)


def test_surrogate_of_a_network_predictor_is_reported_as_such(space):
    from predictors import fit_latency_predictor

    lut = fit_latency_predictor(read_profile("hardware_profiles/data/mbv3-small_cpu-ort.jsonl"), model="lut", cv=3)
    relaxation = relaxed_latency(lut)
    assert not relaxation.exact and relaxation.report["fitted_on"] > 0
    genes = one_hot_rows(space)
    # a LUT predictor is itself additive on the layout: the least-squares surrogate recovers it
    np.testing.assert_allclose(relaxation(genes), lut.predict_genes(genes), rtol=1e-4)


def test_mixture_with_one_hot_weights_is_the_subnet(space):
    torch.manual_seed(0)
    supernet = create_supernet(space)
    randomize_batchnorm(supernet)
    relaxed = RelaxedMobileNetV3(supernet)
    macs = cost_relaxation(space, "macs")
    x = {r: torch.randn(4, 3, r, r, generator=torch.Generator().manual_seed(r)) for r in space.resolutions}
    for train in (False, True):
        supernet.train(train)
        supernet.dropout.eval()
        for row in one_hot_rows(space, n=3, seed=1):
            arch = space.from_genes(row[None])[0]
            weights = [p.float() for p in macs.one_hot(row)]
            inputs = [x[r] if r == arch.resolution else None for r in space.resolutions]
            with torch.no_grad():
                supernet.set_active(arch)
                expected = supernet(x[arch.resolution])
                got = relaxed(inputs, weights)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_kernel_and_expand_mixture_is_the_mixture_of_the_candidate_blocks(space):
    """Eval-mode BN: the one-pass mixture (kernel branches, SE per width, soft channel mask) equals the
    weighted sum of every (kernel, expand) block's output."""
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    randomize_batchnorm(supernet)
    block = supernet.stages[1][1]  # a block with squeeze-and-excitation and a shortcut
    x = torch.randn(3, block.in_channels, 6, 6, generator=torch.Generator().manual_seed(0))
    wk = torch.tensor([0.5, 0.3, 0.2])
    we = torch.tensor([0.1, 0.6, 0.3])
    expected = 0.0
    with torch.no_grad():
        for k, kernel in enumerate(space.kernel_sizes):
            for e, expand in enumerate(space.expand_ratios):
                block.active_kernel, block.active_expand = kernel, expand
                expected = expected + wk[k] * we[e] * block(x)
        got = mixed_block(block, x, wk, we)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_expected_loss_over_resolutions_compares_them_on_the_same_batch(space, digits):
    """``over_resolutions="expected"``: the loss is sum_r p_r L_r, and its gradient on the resolution's logits
    is p_r (L_r - sum_s p_s L_s) / T: it ranks each resolution by its own loss on the same images, the signal a
    one-resolution-per-step draw lacks. The other genes' straight-through draws keep their subnet."""
    from ofa.supernets.relaxed import RelaxedImageTask

    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    randomize_batchnorm(supernet)
    task = RelaxedImageTask(supernet, digits, batch_size=8)
    gene = space.gene_layout["resolution"].start
    row = space.to_genes([space.smallest()])[0]
    macs = cost_relaxation(space, "macs")
    weights = [p.float() for p in macs.one_hot(row)]
    logits = torch.tensor([0.3, -0.2, 0.1, 0.4][:space.choice_counts[gene]], dtype=torch.float64,
                          requires_grad=True)
    temperature = 0.7
    weights[gene] = torch.softmax(logits / temperature, 0).float()
    batch = task.batch("val", weights)
    loss = task.loss(weights, batch, over_resolutions="expected")
    loss.backward()
    per_resolution = []
    for r, resolution in enumerate(space.resolutions):
        one_hot = [w.detach().clone() for w in weights]
        one_hot[gene] = torch.zeros_like(one_hot[gene])
        one_hot[gene][r] = 1.0
        with torch.no_grad():
            per_resolution.append(float(task.loss(one_hot, batch)))
    p = torch.softmax(logits.detach() / temperature, 0).numpy()
    losses = np.array(per_resolution)
    assert float(loss.detach()) == pytest.approx(float(p @ losses), rel=1e-5)
    np.testing.assert_allclose(logits.grad.numpy(), p * (losses - p @ losses) / temperature, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="allowed: 'mix', 'expected'"):
        task.loss(weights, batch, over_resolutions="sum")


class TinyMixture(torch.nn.Module):
    """A smooth two-layer network whose hidden layer mixes two operations by architecture weights."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.a = torch.nn.Parameter(torch.randn(5, 4, generator=generator, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(5, 4, generator=generator, dtype=torch.float64))
        self.out = torch.nn.Parameter(torch.randn(3, 5, generator=generator, dtype=torch.float64))

    def forward(self, x, alpha):
        w = torch.softmax(alpha, 0)
        hidden = w[0] * torch.tanh(x @ self.a.T) + w[1] * torch.sin(x @ self.b.T)
        return hidden @ self.out.T


def test_second_order_approximation_matches_the_exact_hessian_vector_product():
    model = TinyMixture()
    generator = torch.Generator().manual_seed(1)
    x_train, x_val = (torch.randn(16, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    y_train, y_val = (torch.randint(0, 3, (16,), generator=generator) for _ in range(2))
    alpha = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    weights = list(model.parameters())

    def train_loss():
        return torch.nn.functional.cross_entropy(model(x_train, alpha), y_train)

    def val_loss():
        return torch.nn.functional.cross_entropy(model(x_val, alpha), y_val)

    vector = [torch.randn(w.shape, generator=generator, dtype=torch.float64) for w in weights]
    before = [w.detach().clone() for w in weights]
    grad_w = torch.autograd.grad(train_loss(), weights, create_graph=True)
    exact = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grad_w, vector)), alpha)[0]
    # central differences: the error falls with the square of the step, DARTS's 0.01 / ||v|| included
    for epsilon, tolerance in ((0.01, 1e-3), (1e-4, 1e-7)):
        approx = finite_difference_hvp(train_loss, weights, [alpha], vector, epsilon)[0]
        torch.testing.assert_close(approx, exact, rtol=tolerance, atol=1e-10)
    assert all(torch.equal(w, b) for w, b in zip(weights, before))  # the weights are restored

    # the whole second-order gradient against the exact gradient through the unrolled step
    xi = 0.05
    approx_grad = unrolled_arch_gradient(train_loss, val_loss, weights, [alpha], xi)[0]
    grad_w = torch.autograd.grad(train_loss(), weights, create_graph=True)
    unrolled = [w - xi * g for w, g in zip(weights, grad_w)]
    saved = {n: p for n, p in model.named_parameters()}
    logits = torch.func.functional_call(model, dict(zip(saved, unrolled)), (x_val, alpha))
    exact_grad = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y_val), alpha)[0]
    torch.testing.assert_close(approx_grad, exact_grad, rtol=1e-3, atol=1e-8)
    assert all(torch.equal(w, b) for w, b in zip(weights, before))


def test_budget_terms_spend_the_binding_budget_and_push_down_when_over():
    def grads(mode, latency, macs, multipliers=None):
        ratios = {name: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                  for name, v in (("latency", latency), ("macs", macs))}
        term = budget_term(mode, ratios, 2.0, multipliers or {"latency": 0.0, "macs": 0.0})
        return [float(g) for g in torch.autograd.grad(term, list(ratios.values()), allow_unused=True,
                                                      materialize_grads=True)]

    # target: under the binding latency budget, pull latency up; the loose MACs budget is left alone
    assert grads("target", 0.8, 0.1) == [-2.0, 0.0]
    assert grads("target", 1.2, 0.1) == [2.0, 0.0]  # over it: push down
    assert grads("penalty", 0.8, 0.1) == [2.0, 2.0]
    assert grads("lagrange", 1.2, 0.1, {"latency": 0.5, "macs": 0.0}) == [0.5, 0.0]


def test_yoso_l1_prunes_to_exactly_one_choice_per_decision(space):
    params = ArchitectureParameters(space.choice_counts, yoso=True)
    with torch.no_grad():
        for i, v in enumerate(params.values):
            v.copy_(torch.linspace(0.01, 0.3, len(v)).roll(i))
    params.soft_threshold(0.2)  # the L1 proximal step zeroes small factors and never a whole decision
    assert all(int((v > 0).sum()) >= 1 for v in params.values)
    assert any(int((v == 0).sum()) >= 1 for v in params.values)
    params.prune()
    assert all(int((v != 0).sum()) == 1 for v in params.values)


@pytest.fixture(scope="module")
def digits():
    from ofa.data import build_datasets

    return build_datasets("digits", 32, augmentation="none")


def test_search_modes_return_a_pick_under_the_budget_and_leave_the_supernet_alone(space, digits):
    from ofa.families import get_family

    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    task = get_family(space).relaxed_task(supernet, digits, batch_size=8, seed=0)
    macs = cost_function(space, "macs")
    low, high = (float(macs(space.to_genes(a))[0]) for a in (space.smallest(), space.largest()))
    limit = low + 0.2 * (high - low)
    problem = SearchProblem(space, Objective("top1", SyntheticObjectives(space, seed=0).accuracy),
                            [Constraint("macs", macs, limit)])
    relaxations = {"macs": cost_relaxation(space, "macs")}
    for options in ({"mode": "frozen", "resolution": "mix", "steps": 2}, {"mode": "darts", "order": 2, "steps": 1},
                    {"mode": "yoso", "steps": 2}, {"mode": "frozen", "budget": "lagrange", "steps": 2},
                    {"mode": "darts", "budget": "penalty", "steps": 1}):
        result = differentiable_search(problem, task, relaxations,
                                       DifferentiableConfig.from_dict({"batch_size": 8, **options}))
        assert result.feasible and result.constraints["macs"] <= limit
        assert result.method == f"differentiable-{options['mode']}"
        space.parse(result.arch.to_dict())
        trace = result.to_dict()["trace"]
        assert trace["relaxed"]["macs"]["table_at_pick"] == result.constraints["macs"]
        assert set(trace["multipliers"]) == {"macs"} and trace["budget"] == options.get("budget", "target")
        if options["mode"] == "yoso":
            assert trace["choices_left_by_l1"] and len(trace["choices_left_by_l1"]) == space.num_genes
        for key, value in supernet.state_dict().items():
            assert torch.equal(value, state[key]), key
    # the batches restart from the seed: a search does not depend on what ran before it
    config = DifferentiableConfig.from_dict({"batch_size": 8, "steps": 2})
    first, again = (differentiable_search(problem, task, relaxations, config, seed=3) for _ in range(2))
    assert np.array_equal(first.genes, again.genes) and first.history == again.history


def test_bad_differentiable_settings_are_refused_before_any_work(space, digits):
    from ofa.families import get_family

    for options, message in (({"mode": "dart"}, "mode 'dart' unknown"), ({"order": 3}, "order must be 1"),
                             ({"order": 2}, "needs mode 'darts'"), ({"steps": 0}, "steps must be an integer"),
                             ({"temperature": (1.0, 0.0)}, "temperature"), ({"speed": 1}, "unknown differentiable"),
                             ({"hard": "yes"}, "hard true/false"), ({"resolution": "all"}, "resolution 'all'"),
                             ({"temperature": (1.0,)}, "pair"), ({"temperature": 2.0}, "pair"),
                             ({"temperature": ("a", "b")}, "pair"), ({"xi": "a"}, "xi must be"),
                             ({"order": True}, "order must be 1"), ({"arch_lr": True}, "arch_lr must be"),
                             ({"arch_lr": 0}, "arch_lr must be > 0"),
                             ({"budget": "lagrange", "dual_lr": 0}, "dual_lr must be > 0")):
        with pytest.raises(ConfigError, match=message):
            DifferentiableConfig.from_dict(options)
    with pytest.raises(ConfigError, match="must be a dict"):
        DifferentiableConfig.from_dict([("steps", 2)])
    with pytest.raises(ConfigError, match="needs the data set"):
        get_family(space).relaxed_task(create_supernet(space), None)
    with pytest.raises(ConfigError, match="not 'transformer'"):
        get_family("transformer").relaxed_task(None, None)
    macs = cost_function(space, "macs")
    problem = SearchProblem(space, Objective("top1", macs), [Constraint("macs", macs, 1e9)])
    with pytest.raises(ConfigError, match="not budgets of the problem"):
        differentiable_search(problem, None, {"latency_ms@x": cost_relaxation(space, "macs")})
    with pytest.raises(ConfigError, match="must be a DifferentiableConfig or a dict"):
        differentiable_search(problem, None, {}, config="fast")
    with pytest.raises(ConfigError, match="steps must be an integer"):
        differentiable_search(problem, None, {}, config={"steps": 0})
    with pytest.raises(ConfigError, match="on_infeasible='nope'"):  # refused before the steps, not after them
        differentiable_search(problem, None, {}, on_infeasible="nope")
    other = get_family(space).relaxed_task(create_supernet(get_space("mbv3-small-r20-32")), digits)
    with pytest.raises(ConfigError, match="supernet of the problem's search space"):
        differentiable_search(problem, other, {})
    from ofa_pipeline.specialize import check_strategy

    check_strategy("differentiable", space)
    with pytest.raises(ConfigError, match="not 'transformer'.*--strategy evolution"):
        check_strategy("differentiable", get_space("transformer-small"))


def test_frozen_search_gives_the_supernet_back_as_it_was(space, digits):
    """Weights, BN running statistics, requires_grad flags and every module's train/eval mode."""
    from ofa.families import get_family

    torch.manual_seed(0)
    supernet = create_supernet(space).train()
    randomize_batchnorm(supernet)
    supernet.stages[0][0].eval()  # a mixed state: the search must not flatten it to the root's mode
    supernet.classifier.weight.requires_grad_(False)
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    modes = [m.training for m in supernet.modules()]
    flags = [p.requires_grad for p in supernet.parameters()]
    macs = cost_function(space, "macs")
    problem = SearchProblem(space, Objective("top1", SyntheticObjectives(space, seed=0).accuracy),
                            [Constraint("macs", macs, 1e12)])
    differentiable_search(problem, get_family(space).relaxed_task(supernet, digits, batch_size=4), {},
                          DifferentiableConfig.from_dict({"steps": 2, "batch_size": 4, "samples": 4}))
    assert [m.training for m in supernet.modules()] == modes
    assert [p.requires_grad for p in supernet.parameters()] == flags
    assert all(p.grad is None for p in supernet.parameters())
    for key, value in supernet.state_dict().items():  # running_mean / running_var included
        assert torch.equal(value, state[key]), key



def test_specialize_refuses_a_bad_strategy_before_any_work(space, block_predictors, tmp_path):
    from ofa_pipeline.specialize import Target, specialize

    latency = block_predictors[0]
    supernet = create_supernet(space)
    target = [Target((("cpu-ort", 0.5),))]
    for kwargs, message in (({"strategy": "random"}, "search strategy 'random' unknown"),
                            ({"strategy": "differentiable"}, "needs the data set"),
                            ({"differentiable": {"steps": 3}}, "with the evolution strategy"),
                            ({"strategy": "differentiable", "differentiable": {"mode": "x"}}, "mode 'x' unknown")):
        with pytest.raises(ConfigError, match=message):
            specialize(supernet, latency, [latency], target, tmp_path / "out", log=lambda *a: None, **kwargs)
    assert not (tmp_path / "out").exists()


def test_specialize_command_with_the_differentiable_strategy(space, tmp_path, capsys):
    """End to end on the built-in digits: a tiny untrained supernet checkpoint, a LUT latency predictor
    of the deterministic analytical FPGA model, a budget half way up its range."""
    from hardware_profiles import get_backend, profile_space
    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG
    from ofa_pipeline.commands.specialize import main
    from predictors import fit_accuracy_predictor, fit_latency_predictor

    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    config = {**DEFAULT_CONFIG, "data": {**DEFAULT_CONFIG["data"], "dataset": "digits"}}
    checkpoint = save_checkpoint(tmp_path / "final.pt", trainer="mobilenetv3", space=space, config=config,
                                 model=supernet)
    synthetic = SyntheticObjectives(space, seed=0)
    records = [{"arch": a.to_dict(), "top1": float(100 * synthetic.accuracy(space.to_genes(a))[0])}
               for a in space.sample(0, n=40)]
    fit_accuracy_predictor(records, space, model="gbr", target="top1", cv=3).save(tmp_path / "top1.skops")
    profile = profile_space(space, get_backend("fpga-analytical"), 12, tmp_path / "fpga.jsonl", seed=0,
                            progress=False)
    latency = fit_latency_predictor(profile, model="lut", cv=3)
    latency.save(tmp_path / "fpga.skops")
    low, high = (float(latency.predict_archs(a)[0]) for a in (space.smallest(), space.largest()))
    budget = low + 0.5 * (high - low)
    common = ["--supernet", str(checkpoint), "--accuracy-predictor", str(tmp_path / "top1.skops"),
              "--latency-predictor", str(tmp_path / "fpga.skops"), "--device", "fpga-analytical",
              "--latency-ms", f"{budget:.6g}", "--pareto-generations", "1", "--population", "8",
              "--calib-images", "32"]
    out = tmp_path / "deploy"
    assert main(common + ["--strategy", "differentiable", "--diff-steps", "3", "--diff-batch-size", "8",
                          "--out", str(out)]) == 0
    (row,) = json.loads((out / "summary.json").read_text())
    (device,) = row["devices"]
    assert row["feasible"] and row["verification"] == "verified"
    assert device["predicted_latency_ms"] <= budget and device["measured_latency_ms"] <= budget
    stored = json.loads((out / row["target"] / "result.json").read_text())
    assert stored["search"]["method"] == "differentiable-frozen"
    assert stored["settings"]["strategy"] == "differentiable"
    relaxed = stored["search"]["trace"]["relaxed"]["latency_ms@fpga-analytical"]
    assert relaxed["exact"] is False and "surrogate" in relaxed
    report = (out / row["target"] / "report.md").read_text()
    assert "differentiable-frozen" in report and "Mode frozen, 3 steps, budget target" in report
    assert (out / row["target"] / "model.onnx").is_file()
    capsys.readouterr()
    assert main(common + ["--diff-steps", "3", "--diff-resolution", "sample", "--out", str(tmp_path / "bad")]) == 2
    assert "--diff-steps, --diff-resolution only apply to --strategy differentiable" in capsys.readouterr().err
    assert main(common + ["--strategy", "differentiable", "--diff-order", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "needs mode 'darts'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_each_mode_learns_the_architecture_and_the_weights_on_their_own_splits(space, digits):
    """frozen: architecture on val; darts: architecture on val, weights on train (order 2: the virtual step and
    the finite differences on train, the unrolled gradient on val); yoso: both on train."""
    from ofa.supernets.relaxed import RelaxedImageTask

    class Recording(RelaxedImageTask):
        def batch(self, split, weights=None):
            return (*super().batch(split, weights), split)

        def loss(self, weights, batch, over_resolutions="mix"):
            self.calls.append(batch[2])
            return super().loss(weights, batch[:2], over_resolutions)

    torch.manual_seed(0)
    task = Recording(create_supernet(space), digits, batch_size=4)
    macs = cost_function(space, "macs")
    problem = SearchProblem(space, Objective("top1", SyntheticObjectives(space, seed=0).accuracy),
                            [Constraint("macs", macs, 1e12)])
    for options, calls in (({"mode": "frozen"}, ["val"]), ({"mode": "darts"}, ["val", "train"]),
                           ({"mode": "darts", "order": 2}, ["train", "val", "train", "train", "val", "train"]),
                           ({"mode": "yoso"}, ["train"])):
        task.calls = []
        differentiable_search(problem, task, {}, DifferentiableConfig.from_dict(
            {"steps": 1, "batch_size": 4, "samples": 4, **options}))
        assert task.calls == calls, options


def test_a_space_with_precision_is_refused_before_any_work(digits):
    """The relaxed forward mixes kernels, widths, depths and resolutions, not bit widths: a space with precision
    genes is refused by name (the search would otherwise read a precision gene as the resolution)."""
    from ofa_pipeline.specialize import check_strategy

    space = get_space("mbv3-small", weight_bits=(4, 8), activation_bits=(4, 8))
    problem = SearchProblem(space, Objective("top1", SyntheticObjectives(space, seed=0).accuracy),
                            [Constraint("macs", cost_function(space, "macs"), 1e12)])
    with pytest.raises(ConfigError, match="does not search precision"):
        differentiable_search(problem, object(), {})
    with pytest.raises(ConfigError, match="does not search precision"):
        check_strategy("differentiable", space)
