"""HAQ's mixed-precision search: a DDPG agent choosing bits block by block.

Wang, Liu, Lin, Lin and Han, "HAQ: Hardware-Aware Automated Quantization with
Mixed Precision", CVPR 2019. For a fixed architecture, the agent walks
through the layers (here: the running blocks, the unit of precision in our
spaces) and decides, for each, first the weight bits and then the activation
bits. What the agent sees and does, as in the paper:

* **state** of a decision: the block's index, input, middle and output
  channels, kernel, stride, input feature-map size, parameters, whether it
  has an SE layer (our blocks' counterpart of HAQ's depthwise flag), whether
  this decision is for weights or activations, and the previous action; each
  feature divided by its largest value over the blocks, so all lie in [0, 1];
* **action**: a continuous ``a`` in [0, 1], mapped to one of the ``n`` bit
  choices (sorted) as ``round(a * n - 0.5)`` (HAQ's
  ``round(b_min - 0.5 + a (b_max - b_min + 1))`` over a list of choices);
* **budget rule**: when the finished policy exceeds a budget, "sequentially
  decrease the bit-width of each layer until the constraint is satisfied":
  passes over the blocks, each lowering one block's weight bits, then its
  activation bits, by one choice, until every budget holds;
* **reward**: ``lambda x (accuracy - accuracy at full precision)`` with
  ``lambda = 0.1``, from the accuracy predictor (the same objective the other
  strategies maximise); a moving average of the rewards is subtracted as a
  baseline to reduce variance;
* **agent**: DDPG (Lillicrap et al., ICLR 2016), actor and critic with two
  hidden layers of 300 units, Adam at 1e-4 (actor) and 1e-3 (critic), soft
  target updates tau = 0.01, replay buffer of 2000 transitions, batches of 64,
  discount 1 (every decision of an episode gets the episode's reward),
  exploration by truncated normal noise of sigma 0.5 decaying by 0.99 per
  episode after the warm-up episodes, which act at random.

``haq_search(problem, arch)`` searches the bits of ``arch`` (its kernels,
expand ratios, depths and resolution stay) and returns a
:class:`~ofa.search.SearchResult` like the other strategies.
:func:`fixed_architecture` turns a problem into one over the bits of one
architecture, so evolution and NSGA-II can be compared on the same task.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .problem import Constraint, Evaluation, Objective, SearchProblem, SearchResult, best_of


@dataclass(frozen=True)
class HAQConfig:
    episodes: int = 300
    warmup_episodes: int = 20
    hidden: int = 300
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    tau: float = 0.01
    buffer_size: int = 2000
    batch_size: int = 64
    noise_sigma: float = 0.5
    noise_decay: float = 0.99
    reward_scale: float = 0.1  # HAQ's lambda
    baseline_momentum: float = 0.95

    def __post_init__(self):
        if self.episodes < 1 or self.warmup_episodes < 0 or self.batch_size < 1 or self.hidden < 1:
            raise ConfigError(f"HAQ config needs episodes >= 1, warmup_episodes >= 0, batch_size >= 1, hidden >= 1; "
                              f"got {self}")


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, outputs))


class DDPGAgent:
    """Deterministic policy gradient with target networks and a replay buffer (one action in [0, 1])."""

    def __init__(self, state_size: int, config: HAQConfig, seed: int):
        torch.manual_seed(seed)
        self.config = config
        self.actor = nn.Sequential(_mlp(state_size, config.hidden, 1), nn.Sigmoid())
        self.critic = _mlp(state_size + 1, config.hidden, 1)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.buffer: list[tuple] = []
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def act(self, state: np.ndarray, sigma: float) -> float:
        mean = float(self.actor(torch.as_tensor(state, dtype=torch.float32)[None])[0, 0])
        if sigma <= 0:
            return mean
        for _ in range(100):  # truncated normal on [0, 1]
            value = self.rng.normal(mean, sigma)
            if 0.0 <= value <= 1.0:
                return float(value)
        return float(np.clip(mean, 0.0, 1.0))

    def remember(self, state, action, reward, next_state, done) -> None:
        self.buffer.append((state, action, reward, next_state, done))
        if len(self.buffer) > self.config.buffer_size:
            self.buffer.pop(0)

    def update(self) -> None:
        config = self.config
        if len(self.buffer) < config.batch_size:
            return
        picks = self.rng.integers(0, len(self.buffer), config.batch_size)
        state, action, reward, next_state, done = (torch.as_tensor(np.array(column), dtype=torch.float32)
                                                   for column in zip(*(self.buffer[i] for i in picks)))
        action, reward, done = action[:, None], reward[:, None], done[:, None]
        with torch.no_grad():  # discount 1: the value of the rest of the episode
            next_value = self.critic_target(torch.cat([next_state, self.actor_target(next_state)], 1))
            target = reward + (1.0 - done) * next_value
        critic_loss = nn.functional.mse_loss(self.critic(torch.cat([state, action], 1)), target)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        actor_loss = -self.critic(torch.cat([state, self.actor(state)], 1)).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        with torch.no_grad():
            for net, target_net in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, q in zip(net.parameters(), target_net.parameters()):
                    q.mul_(1 - config.tau).add_(config.tau * p)


def _check_precision_space(space) -> None:
    if not getattr(space, "has_precision", False):
        raise ConfigError("HAQ searches bit-widths: the space has no precision decision (build it with "
                          "weight_bits and activation_bits)")


def block_features(space, arch) -> tuple[list[int], np.ndarray]:
    """The gene positions of the running blocks and their HAQ features (rows, normalised to [0, 1])."""
    arch = space.parse(arch)
    blocks = dict(space.blocks(arch))
    positions, rows = [], []
    for stage, i, _, _ in arch.active_blocks():
        block = blocks[f"stages.{stage}.{i}"]
        positions.append(stage * space.max_depth + i)
        rows.append([len(rows), block.in_channels, block.mid_channels, block.out_channels, block.kernel, block.stride,
                     block.resolution, block.params, float(block.use_se)])
    features = np.asarray(rows, dtype=np.float64)
    features /= np.maximum(features.max(axis=0), 1e-12)
    return positions, features


def fixed_architecture(problem: SearchProblem, arch) -> SearchProblem:
    """The same objective and budgets over the bits of ``arch`` only: every gene row is read with
    ``arch``'s kernels, expand ratios, depths and resolution (other strategies search it unchanged;
    map their result with :func:`with_architecture`)."""
    space = problem.space
    _check_precision_space(space)
    project = with_architecture(space, arch)
    return SearchProblem(space, Objective(problem.objective.name, lambda g: problem.objective.fn(project(g)),
                                          problem.objective.maximize),
                         [Constraint(c.name, (lambda fn: lambda g: fn(project(g)))(c.fn), c.limit, c.unit)
                          for c in problem.constraints])


def with_architecture(space, arch):
    """``genes -> genes`` with every decision but the bits taken from ``arch`` (bits of blocks
    ``arch`` does not run dropped; bits of blocks it runs that a row skips set to the highest)."""
    template = space.to_genes(space.parse(arch))[0]
    layout = space.gene_layout
    bits = np.zeros(space.num_genes, dtype=bool)
    bits[layout["weight_bits"]] = bits[layout["activation_bits"]] = True
    highest = np.zeros(space.num_genes, dtype=np.int64)  # gene value of the most bits (choices in any order)
    highest[layout["weight_bits"]] = int(np.argmax(space.weight_bits))
    highest[layout["activation_bits"]] = int(np.argmax(space.activation_bits))

    def project(genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        out = np.where(bits[None, :], genes, template[None, :])
        running = template >= 0
        out = np.where(bits & running & (out < 0), highest, out)
        return np.where(bits & ~running, -1, out)

    return project


class _BitOrder:
    """Gene values of one precision decision ordered by bits (the space may list them in any order)."""

    def __init__(self, values):
        self.by_bits = np.argsort(values)  # rank (fewest bits first) -> gene value
        self.rank = np.argsort(self.by_bits)  # gene value -> rank

    def __len__(self) -> int:
        return len(self.by_bits)


def _lower_until_feasible(problem: SearchProblem, genes: np.ndarray, positions: list[int],
                          orders: dict) -> tuple[np.ndarray, int]:
    """HAQ's budget rule: passes over the blocks lowering each block's weight bits, then its
    activation bits, by one choice, until every budget holds (or nothing can be lowered).
    Returns the genes and the number of evaluations it took. The rows of one pass do not
    depend on their scores, so each pass is scored in one call and the first that fits wins."""
    layout = problem.space.gene_layout
    columns = {"weight": layout["weight_bits"].start, "activation": layout["activation_bits"].start}
    genes = genes.copy()
    if not problem.constraints:
        return genes, 0
    evaluations = 1
    if problem.evaluate(genes[None]).violation[0] <= 0:
        return genes, evaluations
    while True:
        steps = []
        for block in positions:
            for kind in ("weight", "activation"):
                column, order = columns[kind] + block, orders[kind]
                rank = order.rank[genes[column]]
                if rank > 0:
                    genes[column] = order.by_bits[rank - 1]
                    steps.append(genes.copy())
        if not steps:
            return genes, evaluations
        scores = problem.evaluate(np.array(steps))
        fits = np.flatnonzero(scores.feasible)
        if len(fits):
            evaluations += int(fits[0]) + 1  # what the sequential rule would have evaluated
            return steps[int(fits[0])], evaluations
        evaluations += len(steps)


def haq_search(problem: SearchProblem, arch, config: HAQConfig | None = None, seed: int = 0,
               on_infeasible: str = "raise") -> SearchResult:
    """HAQ's DDPG agent over the bits of ``arch`` (module docstring); deterministic for a seed."""
    config = config or HAQConfig()
    space = problem.space
    _check_precision_space(space)
    arch = space.parse(arch)
    layout = space.gene_layout
    positions, features = block_features(space, arch)
    orders = {"weight": _BitOrder(space.weight_bits), "activation": _BitOrder(space.activation_bits)}
    columns = {"weight": layout["weight_bits"].start, "activation": layout["activation_bits"].start}
    template = space.to_genes(arch)[0]
    full = template.copy()
    for kind, order in orders.items():
        full[[columns[kind] + b for b in positions]] = order.by_bits[-1]
    reference = float(problem.evaluate(full[None]).raw_objective[0])  # the highest precision's accuracy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # networks this small run faster on one thread than handed across several
    try:
        return _run_agent(problem, config, seed, on_infeasible, features, positions, orders, columns, template,
                          reference)
    finally:
        torch.set_num_threads(threads)


def _run_agent(problem, config, seed, on_infeasible, features, positions, orders, columns, template, reference):
    sign = 1.0 if problem.objective.maximize else -1.0
    agent = DDPGAgent(features.shape[1] + 2, config, seed)
    rng = np.random.default_rng(seed)
    baseline, sigma, evaluations = None, config.noise_sigma, 1
    scored: list[Evaluation] = []
    history: list[float] = []
    steps = [(b, kind) for b in range(len(positions)) for kind in ("weight", "activation")]
    for episode in range(config.episodes):
        genes, transitions, previous = template.copy(), [], 0.0
        for index, (b, kind) in enumerate(steps):
            state = np.concatenate([features[b], [1.0 if kind == "weight" else 0.0, previous]])
            action = float(rng.random()) if episode < config.warmup_episodes else agent.act(state, sigma)
            order = orders[kind]
            rank = int(np.clip(np.round(action * len(order) - 0.5), 0, len(order) - 1))
            genes[columns[kind] + positions[b]] = order.by_bits[rank]
            transitions.append((state, action))
            previous = action
        genes, used = _lower_until_feasible(problem, genes, positions, orders)
        evaluation = problem.evaluate(genes[None])
        evaluations += used + 1
        scored.append(evaluation)
        reward = config.reward_scale * sign * (float(evaluation.raw_objective[0]) - reference)
        if not evaluation.feasible[0]:  # nothing left to lower: the budget cannot be met from here
            reward -= config.reward_scale * float(evaluation.violation[0])
        baseline = reward if baseline is None else (config.baseline_momentum * baseline
                                                    + (1 - config.baseline_momentum) * reward)
        for index, (state, action) in enumerate(transitions):
            last = index == len(transitions) - 1
            next_state = state if last else transitions[index + 1][0]
            agent.remember(state, action, reward - baseline, next_state, float(last))
        if episode >= config.warmup_episodes:
            for _ in range(len(transitions)):
                agent.update()
            sigma *= config.noise_decay
        best = Evaluation.concatenate(scored)
        feasible = best.feasible
        history.append(float(best.raw_objective[feasible][np.argmax(best.objective[feasible])])
                       if feasible.any() else np.nan)
    return best_of(problem, Evaluation.concatenate(scored), "haq", evaluations, seed, history, on_infeasible)


__all__ = ["DDPGAgent", "HAQConfig", "block_features", "fixed_architecture", "haq_search", "with_architecture"]
