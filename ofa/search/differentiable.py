"""Differentiable architecture search on the elastic supernet, with a differentiable latency cost.

Every gene of the space gets a vector of architecture parameters over its
choices; the supernet runs the weighted mixture of all subnets
(:mod:`ofa.supernets.relaxed`), and the loss is the task loss plus a cost term:
the expected latency of the relaxed network on the target device, read from the
device's block-sum latency predictor (or MACs) through the space's additive
tables (:mod:`ofa.search.relaxation`). Three modes:

* ``"frozen"``: the trained once-for-all supernet's weights stay fixed and only
  the architecture parameters learn, on the validation split (softmax or
  Gumbel-softmax with an annealed temperature; FBNet, Wu et al. 2019, on a
  once-for-all supernet): seconds to minutes;
* ``"darts"``: DARTS (Liu et al., ICLR 2019): the weights (of a copy of the
  supernet) learn on the training split and the architecture parameters on the
  validation split, alternately; ``order=1`` uses the current weights, ``order=2``
  the one-step unrolled weights ``w - xi * grad_w L_train`` with the
  finite-difference Hessian-vector product of the paper (:func:`finite_difference_hvp`);
* ``"yoso"``: You Only Search Once (NAS as pruning): a non-negative scale factor
  on every candidate choice, trained jointly with the weights on the training
  split with an L1 penalty (a proximal soft-threshold step after each update), then
  pruned to the one largest factor per decision.

Budgets: ``budget="target"`` (default) adds ``latency_weight * |E[cost] / limit - 1|`` for the
binding budget (the largest ratio; :func:`budget_term`),
TuNAS's absolute reward (Bender et al., 2020): the search spends the budget, and the
task loss decides on what (a budget is what a deployment may spend, and a larger
subnet is the more accurate one). ``"lagrange"`` treats each budget as a hard
constraint ``E[cost] <= limit`` with a Lagrange multiplier updated by dual ascent;
``"penalty"`` adds ``latency_weight * E[cost] / limit`` (ProxylessNAS's
expected-latency loss in units of the budget). The relaxed cost is calibrated
against the constraint functions of the problem (the predictor's point value, an
upper bound, or a closed-loop recalibration) at the current argmax. The result is
then read off like any other search's: the most probable architecture under the
learned distribution (argmax first, then samples from it) that meets every budget
of the :class:`~ofa.search.problem.SearchProblem` by its own functions, ranked by
:func:`~ofa.search.problem.best_of`'s feasibility rules; its objective is the
problem's (e.g. the accuracy predictor's), so reports and verification are the
same as for evolution.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ..errors import ConfigError
from .evolution import one_gene_variants
from .problem import SearchProblem, SearchResult, best_of, unique_rows

MODES = ("frozen", "darts", "yoso")
BUDGET_MODES = ("target", "lagrange", "penalty")
RESOLUTION_MODES = ("expected", "sample", "mix")
PRECISION_NOT_RELAXED = ("the differentiable strategy does not search precision (the mixed forward of several bit "
                         "widths is not written): search a space with precision by evolution, NSGA-II or HAQ's "
                         "agent, or use the space without weight_bits/activation_bits")


@dataclass
class DifferentiableConfig:
    """Settings of :func:`differentiable_search` (the defaults suit the small spaces on 2 CPU cores)."""

    mode: str = "frozen"
    steps: int = 60
    batch_size: int = 64
    arch_lr: float = 0.1  # Adam on the architecture parameters (YOSO: SGD on the scale factors)
    weight_lr: float = 0.01  # SGD (momentum 0.9) on the supernet's weights, darts and yoso
    order: int = 1  # darts: 1 first order, 2 the unrolled second-order approximation
    xi: float | None = None  # darts order 2: the virtual step; default weight_lr
    temperature: tuple[float, float] = (2.0, 0.2)  # softmax temperature, annealed exponentially start -> end
    gumbel: bool = True  # Gumbel-softmax weights in the forward pass (the cost term uses the plain softmax)
    # "expected": every resolution runs on the same batch and the task loss is the expectation of each
    # resolution's loss under its probabilities, sum_r p_r * L_r, so its gradient, L_r minus the mean, compares
    # resolutions directly (a pass per resolution); "sample": one resolution per step, drawn by a straight-through
    # hard Gumbel-softmax (GDAS, Dong and Yang 2019), one pass per step, but its gradient only asks whether the
    # drawn resolution's logits should be scaled; "mix": every resolution, logits mixed
    resolution: str = "expected"
    # straight-through Gumbel-softmax: the forward pass runs the drawn subnet exactly (the one-hot sample) and the
    # gradient reaches every choice through the soft sample; None: on for "frozen" (the weights were trained for
    # subnets, not for mixtures of them), off for "darts" (DARTS's continuous mixture); unused by "yoso"
    hard: bool | None = None
    budget: str = "target"
    latency_weight: float = 1.0  # target and penalty: the weight of the cost term; lagrange: unused
    dual_lr: float = 0.5  # lagrange: the multiplier's ascent step per unit of relative excess
    l1: float = 0.5  # yoso: L1 strength on the scale factors (the proximal step shrinks each by arch_lr * l1)
    samples: int = 256  # architectures drawn from the final distribution for the pick
    calibrate_every: int = 5  # steps between calibrations of the relaxed cost at the argmax

    def check(self) -> "DifferentiableConfig":
        if self.mode not in MODES:
            raise ConfigError(f"differentiable mode {self.mode!r} unknown; allowed: {MODES}")
        if self.budget not in BUDGET_MODES:
            raise ConfigError(f"differentiable budget {self.budget!r} unknown; allowed: {BUDGET_MODES}")
        if not isinstance(self.gumbel, bool) or not (self.hard is None or isinstance(self.hard, bool)):
            raise ConfigError(f"differentiable gumbel must be true/false and hard true/false/None, got "
                              f"{self.gumbel!r}, {self.hard!r}")
        if self.resolution not in RESOLUTION_MODES:
            raise ConfigError(f"differentiable resolution {self.resolution!r} unknown; allowed: {RESOLUTION_MODES}")
        if isinstance(self.order, bool) or self.order not in (1, 2):
            raise ConfigError(f"differentiable order must be 1 (first order) or 2 (second order), got {self.order!r}")
        if self.order == 2 and self.mode != "darts":
            raise ConfigError(f"order 2 (the unrolled weights) needs mode 'darts', which trains the weights; got "
                              f"mode {self.mode!r}")
        for name in ("steps", "batch_size", "samples", "calibrate_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"differentiable {name} must be an integer >= 1, got {value!r}")
        for name in ("arch_lr", "weight_lr", "dual_lr", "l1", "latency_weight"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"differentiable {name} must be a finite number >= 0, got {value!r}")
        if self.arch_lr == 0:
            raise ConfigError("differentiable arch_lr must be > 0: with 0 the architecture parameters never move "
                              "and the pick is the uniform distribution's")
        if self.budget == "lagrange" and self.dual_lr == 0:
            raise ConfigError("differentiable dual_lr must be > 0 with budget 'lagrange': with 0 the multiplier "
                              "stays 0 and the budget never acts on the search (or use budget 'penalty')")
        if self.xi is not None and (not _is_number(self.xi) or not math.isfinite(self.xi) or self.xi <= 0):
            raise ConfigError(f"differentiable xi must be a finite number > 0, got {self.xi!r}")
        temperature = self.temperature
        if (not isinstance(temperature, (tuple, list)) or len(temperature) != 2
                or not all(_is_number(t) and math.isfinite(t) and t > 0 for t in temperature)):
            raise ConfigError(f"differentiable temperature must be a pair (start, end) of finite numbers > 0, "
                              f"got {temperature!r}")
        return self

    @classmethod
    def from_dict(cls, options: dict | None) -> "DifferentiableConfig":
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"differentiable options must be a dict of option: value, got {type(options).__name__}")
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown differentiable option(s) {unknown}; allowed: {sorted(known)}")
        if isinstance(options.get("temperature"), list):  # a pair read from JSON or YAML
            options["temperature"] = tuple(options["temperature"])
        return cls(**options).check()


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class DifferentiableResult(SearchResult):
    """A :class:`SearchResult` with what the relaxation saw (``trace``)."""

    trace: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "trace": self.trace}


class ArchitectureParameters(torch.nn.Module):
    """One parameter vector per gene: logits (softmax modes) or scale factors (YOSO).

    ``sampled``: a gene drawn as a hard one-hot each step with a straight-through Gumbel-softmax
    (GDAS); ``expected``: a gene whose weights are its plain softmax probabilities (no noise, never
    hard), for a loss taken in expectation over its choices. Both keep logits in every mode, YOSO
    included (where their pruning is the argmax)."""

    def __init__(self, counts, yoso: bool = False, sampled: int | None = None, hard: bool = False,
                 expected: int | None = None):
        super().__init__()
        if sampled is not None and sampled == expected:
            raise ConfigError(f"gene {sampled} cannot be both sampled and taken in expectation")
        self.yoso = yoso
        self.sampled = sampled
        self.expected = expected
        self.hard = hard
        init = [torch.full((int(c),), 1.0 / int(c)) if self._scaled(g) else torch.zeros(int(c))
                for g, c in enumerate(counts)]
        self.values = torch.nn.ParameterList([torch.nn.Parameter(v.to(torch.float64)) for v in init])

    def _scaled(self, gene: int) -> bool:
        return self.yoso and gene not in (self.sampled, self.expected)

    def scale_factors(self) -> list[torch.Tensor]:
        """The YOSO scale factors (the sampled gene's logits are not among them)."""
        return [v for g, v in enumerate(self.values) if self._scaled(g)]

    def probabilities(self, temperature: float = 1.0) -> list[torch.Tensor]:
        return [v.abs() / v.abs().sum().clamp_min(1e-12) if self._scaled(g) else torch.softmax(v / temperature, 0)
                for g, v in enumerate(self.values)]

    def noise(self, gumbel: bool, generator: torch.Generator | None) -> list[torch.Tensor] | None:
        """Gumbel noise for one step (None: plain softmax)."""
        if not gumbel and self.sampled is None:
            return None
        out = []
        for g, v in enumerate(self.values):
            uniform = torch.rand(v.shape, generator=generator, dtype=v.dtype).clamp(1e-10, 1 - 1e-10)
            drawn = (gumbel and not self._scaled(g) and g != self.expected) or g == self.sampled
            out.append(-torch.log(-torch.log(uniform)) if drawn else torch.zeros_like(v))
        return out

    def mixture(self, temperature: float, noise: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The weights the forward pass mixes with (Gumbel-softmax with ``noise``; YOSO: the scale factors)."""
        out = []
        for g, v in enumerate(self.values):
            if self._scaled(g):
                out.append(v.to(torch.float32))
                continue
            soft = torch.softmax((v if noise is None else v + noise[g]) / temperature, 0)
            if g == self.sampled or (self.hard and g != self.expected):  # forward the drawn choice, gradient
                # through the soft weights
                hard = torch.zeros_like(soft)
                hard[int(torch.argmax(soft))] = 1.0
                soft = hard - soft.detach() + soft
            out.append(soft.to(torch.float32))
        return out

    @torch.no_grad()
    def prune(self) -> None:
        """YOSO's last step: keep the largest scale factor of every decision, zero the others
        (a sampled or expected gene: its most probable choice, with all the probability)."""
        for g, v in enumerate(self.values):
            keep = int(torch.argmax(v.abs() if self._scaled(g) else v))
            v.zero_()
            v[keep] = 1.0 if self._scaled(g) else 1e3

    @torch.no_grad()
    def soft_threshold(self, amount: float) -> None:
        """The proximal step of the L1 penalty; scale factors stay >= 0 and a decision keeps at least one."""
        for v in self.scale_factors():
            largest = int(torch.argmax(v))
            shrunk = (v - amount).clamp_min(0.0)
            if float(shrunk.max()) <= 0.0:
                shrunk[largest] = max(float(v[largest]), 1e-6)
            v.copy_(shrunk)


def finite_difference_hvp(loss_fn, weights: list[torch.Tensor], arch: list[torch.Tensor],
                          vector: list[torch.Tensor], epsilon: float = 0.01) -> list[torch.Tensor]:
    """DARTS's approximation of ``d/d_arch (grad_w L(w, arch) . vector)`` by central differences,
    ``(grad_arch L(w + e v, arch) - grad_arch L(w - e v, arch)) / (2 e)`` with ``e = epsilon / ||v||``.
    ``loss_fn()`` evaluates the loss at the current values of ``weights`` (modified in place, restored)."""
    norm = torch.sqrt(sum((v.detach() ** 2).sum() for v in vector))
    step = epsilon / max(float(norm), 1e-12)
    grads = []
    saved = [w.detach().clone() for w in weights]
    try:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, s, v in zip(weights, saved, vector):
                    w.copy_(s + sign * step * v)
            grads.append(torch.autograd.grad(loss_fn(), arch, allow_unused=True))
    finally:
        with torch.no_grad():  # bit for bit: adding and subtracting the step would leave rounding behind
            for w, s in zip(weights, saved):
                w.copy_(s)
    return [(_zero(p, a) - _zero(m, a)) / (2 * step) for p, m, a in zip(grads[0], grads[1], arch)]


def _zero(grad, like):
    return torch.zeros_like(like) if grad is None else grad


def unrolled_arch_gradient(train_loss, val_loss, weights: list[torch.Tensor], arch: list[torch.Tensor],
                           xi: float) -> list[torch.Tensor]:
    """DARTS's second-order architecture gradient: ``grad_arch L_val(w', arch) - xi * H v`` with
    ``w' = w - xi * grad_w L_train(w, arch)``, ``v = grad_w' L_val(w', arch)`` and ``H v`` the mixed
    second derivative of ``L_train`` by :func:`finite_difference_hvp`. The weights are left as they were."""
    grad_train = torch.autograd.grad(train_loss(), weights, allow_unused=True)
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w, g in zip(weights, grad_train):
            if g is not None:
                w.sub_(g, alpha=xi)
    try:
        grads = torch.autograd.grad(val_loss(), list(arch) + list(weights), allow_unused=True)
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
    d_arch = [_zero(g, a) for g, a in zip(grads[:len(arch)], arch)]
    d_weights = [_zero(g, w) for g, w in zip(grads[len(arch):], weights)]
    hvp = finite_difference_hvp(train_loss, weights, arch, d_weights)
    return [g - xi * h for g, h in zip(d_arch, hvp)]


def budget_term(mode: str, ratios: dict, weight: float, multipliers: dict) -> torch.Tensor:
    """The cost term of the loss from each budget's ``E[cost] / limit`` (``ratios``, tensors).

    ``"target"``: ``weight * |max ratio - 1|``: the binding budget (the largest ratio) is spent, and a
    looser one (a generous MACs budget beside the latency budget, or the other devices of a joint
    target) is not pulled up to its own limit; ``"lagrange"``: ``sum multiplier * (ratio - 1)``;
    ``"penalty"``: ``weight * sum ratio``."""
    total = torch.zeros((), dtype=torch.float64)
    if not ratios:
        return total
    if mode == "target":
        return total + weight * (torch.stack([r.reshape(()) for r in ratios.values()]).max() - 1.0).abs()
    for name, ratio in ratios.items():
        total = total + (multipliers[name] * (ratio - 1.0) if mode == "lagrange" else weight * ratio)
    return total


def _batchnorm_buffers(module: torch.nn.Module) -> dict:
    return {name: b.detach().clone() for name, b in module.named_buffers()}


def _restore_buffers(module: torch.nn.Module, saved: dict) -> None:
    with torch.no_grad():
        for name, b in module.named_buffers():
            b.copy_(saved[name])


def differentiable_search(problem: SearchProblem, task, relaxations: dict, config: DifferentiableConfig | None = None,
                          seed: int = 0, on_infeasible: str = "raise", log=None) -> DifferentiableResult:
    """Search ``problem``'s space by gradient (module docstring).

    ``task``: the supernet's relaxed task (``ModelFamily.relaxed_task``: ``.model``, ``.batch(split, weights)``,
    ``.loss(weights, batch, over_resolutions)``, ``.copy()``, optionally ``.reseed(seed)``); ``relaxations``:
    ``{constraint name: AdditiveRelaxation}`` for the budgets with a differentiable cost (the others are only
    checked on the discrete pick); ``config``: a :class:`DifferentiableConfig` or a dict of its fields."""
    if isinstance(config, dict):
        config = DifferentiableConfig.from_dict(config)
    elif config is not None and not isinstance(config, DifferentiableConfig):
        raise ConfigError(f"config must be a DifferentiableConfig or a dict of its fields, got {type(config).__name__}")
    config = (config or DifferentiableConfig()).check()
    if on_infeasible not in ("raise", "nearest"):
        raise ConfigError(f"on_infeasible={on_infeasible!r}; allowed: 'raise', 'nearest'")
    space = problem.space
    if getattr(space, "has_precision", False):
        raise ConfigError(PRECISION_NOT_RELAXED)
    names = [c.name for c in problem.constraints]
    unknown = sorted(set(relaxations) - set(names))
    if unknown:
        raise ConfigError(f"relaxed costs {unknown} are not budgets of the problem; its budgets: {names}")
    for name, relaxation in relaxations.items():
        if relaxation.space.fingerprint != space.fingerprint:
            raise ConfigError(f"the relaxed cost {name!r} was built for another search space")
    task_space = getattr(getattr(task, "model", None), "space", None)
    if task_space is None or getattr(task_space, "fingerprint", None) != space.fingerprint:
        raise ConfigError("the relaxed task must run a supernet of the problem's search space "
                          "(ModelFamily.relaxed_task of that supernet)")
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if config.mode != "frozen":  # the joint modes train weights: on a copy, the supernet given stays as it is
        task = task.copy()
    if hasattr(task, "reseed"):
        task.reseed(seed)
    net = task.model.supernet
    try:
        layout = space.gene_layout
    except NotImplementedError:
        layout = {}
    resolution_gene = layout["resolution"].start if "resolution" in layout else None
    over_resolutions = "expected" if config.resolution == "expected" and resolution_gene is not None else "mix"
    hard = (config.mode == "frozen") if config.hard is None else bool(config.hard)
    arch = ArchitectureParameters(space.choice_counts, yoso=config.mode == "yoso",
                                  sampled=resolution_gene if config.resolution == "sample" else None,
                                  expected=resolution_gene if over_resolutions == "expected" else None,
                                  hard=hard and config.mode != "yoso")

    def task_loss(weights, batch):
        return task.loss(weights, batch, over_resolutions=over_resolutions)
    budgets = {c.name: c for c in problem.constraints if c.name in relaxations}
    multipliers = {name: 0.0 for name in budgets}
    calibration = {name: 1.0 for name in budgets}
    was_training = [(m, m.training) for m in net.modules()]  # each module's own mode, given back as it was
    saved = _batchnorm_buffers(net) if config.mode == "frozen" else None
    weights = [p for p in net.parameters()]
    requires = [p.requires_grad for p in weights]
    net.train()
    for module in net.modules():  # batch statistics, no dropout: the search compares choices, not noise
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    if config.mode == "frozen":
        for p in weights:
            p.requires_grad_(False)
    weight_opt = (torch.optim.SGD(weights, lr=config.weight_lr, momentum=0.9, weight_decay=3e-4)
                  if config.mode == "darts" else None)
    if config.mode == "yoso":
        joint_opt = torch.optim.SGD([{"params": weights, "lr": config.weight_lr, "momentum": 0.9},
                                     {"params": list(arch.values), "lr": config.arch_lr}])
        arch_opt = None
    else:
        arch_opt = torch.optim.Adam(arch.values, lr=config.arch_lr, betas=(0.5, 0.999))
    xi = config.weight_lr if config.xi is None else config.xi
    history, trace_steps = [], []

    def temperature_at(step: int) -> float:
        start, end = config.temperature
        return start * (end / start) ** (step / max(config.steps - 1, 1))

    def cost_terms(probs) -> tuple[torch.Tensor, dict]:
        ratios = {name: relaxations[name].expected(probs) * calibration[name] / constraint.limit
                  for name, constraint in budgets.items()}
        return budget_term(config.budget, ratios, config.latency_weight, multipliers), ratios

    def calibrate(temperature: float) -> None:
        genes = argmax_genes(space, arch.probabilities(temperature))
        for name, constraint in budgets.items():
            table = float(relaxations[name](genes)[0])
            actual = float(np.asarray(constraint.fn(genes), dtype=np.float64).reshape(-1)[0])
            if table > 0 and actual > 0 and math.isfinite(actual):
                calibration[name] = actual / table

    try:
        for step in range(config.steps):
            temperature = temperature_at(step)
            if step % config.calibrate_every == 0:
                calibrate(temperature)
            noise = arch.noise(config.gumbel, generator)
            mix = arch.mixture(temperature, noise)
            if config.mode == "yoso":
                batch = task.batch("train", mix)
                joint_opt.zero_grad()
                cost, ratios = cost_terms(arch.probabilities())
                loss = task_loss(mix, batch)
                (loss + cost).backward()
                joint_opt.step()
                with torch.no_grad():
                    for v in arch.scale_factors():
                        v.clamp_(min=0.0)
                arch.soft_threshold(config.arch_lr * config.l1)
            else:
                val_batch = task.batch("val", mix)
                arch_opt.zero_grad()
                cost, ratios = cost_terms(arch.probabilities(temperature))
                if config.mode == "darts" and config.order == 2:
                    train_batch = task.batch("train", mix)
                    grads = unrolled_arch_gradient(lambda: task_loss(arch.mixture(temperature, noise), train_batch),
                                                   lambda: task_loss(arch.mixture(temperature, noise), val_batch),
                                                   weights,
                                                   list(arch.values), xi)
                    loss = task_loss(mix, val_batch).detach()
                    cost_grads = (torch.autograd.grad(cost, list(arch.values), allow_unused=True)
                                  if cost.requires_grad else [None] * len(grads))
                    for v, g, c in zip(arch.values, grads, cost_grads):
                        v.grad = g.detach() + _zero(c, v)
                else:
                    loss = task_loss(mix, val_batch)
                    if weight_opt is not None:
                        weight_opt.zero_grad()
                    (loss + cost).backward()
                arch_opt.step()
                if config.mode == "darts":
                    mix = [w.detach() for w in arch.mixture(temperature, noise)]
                    train_batch = task.batch("train", mix)
                    weight_opt.zero_grad()
                    for v in arch.values:
                        v.grad = None
                    task_loss(mix, train_batch).backward()
                    torch.nn.utils.clip_grad_norm_(weights, 5.0)
                    weight_opt.step()
            if config.budget == "lagrange":
                for name, ratio in ratios.items():
                    multipliers[name] = max(0.0, multipliers[name] + config.dual_lr * (float(ratio.detach()) - 1.0))
            loss = float(loss.detach())
            history.append(loss)
            trace_steps.append({"loss": round(loss, 5),
                                **{f"expected/limit {n}": round(float(r.detach()), 4) for n, r in ratios.items()}})
            if log is not None and (step + 1) % max(1, config.steps // 5) == 0:
                log(f"  differentiable ({config.mode}) step {step + 1}/{config.steps}: loss {float(loss):.4f}, "
                    + ", ".join(f"E[{n}]/limit {float(r.detach()):.3f}" for n, r in ratios.items()))
    finally:
        for p, flag in zip(weights, requires):
            p.requires_grad_(flag)
        if saved is not None:
            _restore_buffers(net, saved)
        for module, flag in was_training:
            module.train(flag)

    final_temperature = config.temperature[1]
    if config.mode == "yoso":
        nonzero_before = [int((v.detach() > 0).sum()) if arch._scaled(g) else None
                          for g, v in enumerate(arch.values)]
        arch.prune()
    probs = [p.detach() for p in arch.probabilities(final_temperature)]
    search_seconds = time.perf_counter() - started
    result = pick(problem, probs, config.samples, seed, f"differentiable-{config.mode}", on_infeasible, history)
    trace = {"mode": config.mode, "order": config.order if config.mode == "darts" else None,
             "steps": config.steps, "budget": config.budget, "search_seconds": round(search_seconds, 3),
             "multipliers": {k: round(v, 5) for k, v in multipliers.items()},
             "calibration": {k: round(v, 5) for k, v in calibration.items()},
             "relaxed": {}, "last_steps": trace_steps[-3:]}
    pick_genes = result.genes[None, :]
    for name, relaxation in relaxations.items():
        trace["relaxed"][name] = {
            "expected": float(relaxation.expected(probs)) * calibration.get(name, 1.0),
            "expected_uncalibrated": float(relaxation.expected(probs)),
            "table_at_pick": float(relaxation(pick_genes)[0]),
            "constraint_at_pick": result.constraints.get(name),
            "exact": relaxation.exact, **({"surrogate": relaxation.report} if relaxation.report else {})}
    if config.mode == "yoso":
        trace["choices_left_by_l1"] = nonzero_before
        trace["decisions_pruned_by_l1"] = int(sum(1 for n, c in zip(nonzero_before, space.choice_counts)
                                                   if n is not None and c > 1 and n == 1))
    trace["argmax_is_pick"] = bool(np.array_equal(argmax_genes(space, probs)[0], result.genes))
    values = {f.name: getattr(result, f.name) for f in fields(SearchResult)}
    return DifferentiableResult(**values, trace=trace)


def argmax_genes(space, probs: list[torch.Tensor]) -> np.ndarray:
    """The most probable choice of every gene, as a valid gene row (skipped genes -1)."""
    row = np.array([int(torch.argmax(p)) for p in probs], dtype=np.int64)[None, :]
    return space.normalize_genes(row, np.random.default_rng(0))


def log_probability(space, probs: list[torch.Tensor], genes: np.ndarray) -> np.ndarray:
    """The log-probability of each row under independent choices, counting only the genes it uses."""
    active = space.active_genes(genes)
    out = np.zeros(len(genes))
    for g, p in enumerate(probs):
        values = np.log(np.clip(p.numpy().astype(np.float64), 1e-300, None))
        column = np.where(genes[:, g] >= 0, values[np.clip(genes[:, g], 0, None)], 0.0)
        out += np.where(active[:, g], column, 0.0)
    return out


def pick(problem: SearchProblem, probs: list[torch.Tensor], samples: int, seed: int, method: str,
         on_infeasible: str, history: list[float]) -> SearchResult:
    """The most probable architecture under ``probs`` that meets the problem's budgets: the argmax, samples
    from the distribution, and a greedy descent from the argmax through its one-gene variants (most probable
    first) while it is over a budget; ranked by the feasibility rules of :func:`best_of`."""
    space = problem.space
    rng = np.random.default_rng(seed)
    best = argmax_genes(space, probs)
    drawn = np.stack([rng.choice(len(p), size=samples, p=(p.numpy() / p.numpy().sum())) for p in probs], axis=1)
    candidates = [best, space.normalize_genes(drawn, rng)]
    current = best[0]
    for _ in range(2 * space.num_genes):  # bounded descent: every step lowers the total violation
        score = problem.evaluate(current[None, :])
        if score.feasible[0]:
            break
        variants = space.normalize_genes(one_gene_variants(current, space.choice_counts), rng)
        scores = problem.evaluate(variants)
        better = scores.violation < score.violation[0]
        if not better.any():
            break
        logp = log_probability(space, probs, variants)
        if scores.feasible.any():  # the most probable variant that fits
            feasible = np.where(scores.feasible)[0]
            current = variants[feasible[np.argmax(logp[feasible])]]
        else:  # the variant closest to the budgets, the most probable among equals
            current = variants[np.lexsort((-logp, scores.violation))[0]]
        candidates.append(current[None, :])
    genes = np.concatenate(candidates)
    genes = genes[unique_rows(genes)]
    scores = problem.evaluate(genes)
    scores.objective = log_probability(space, probs, genes)  # rank by the learned distribution
    return best_of(problem, scores, method, len(genes), seed, history, on_infeasible)
