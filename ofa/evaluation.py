"""Evaluating subnets: BN re-calibration, accuracy, and loyalty to the teacher.

* :func:`recalibrate_bn` - re-estimate every BatchNorm's running mean and
  variance exactly (one pass, cumulative over all images, not a moving
  average) on a fixed set of images; works on a supernet at its active
  subnet and on static models, and sets no global flags.
* :func:`label_loyalty` - fraction of inputs on which the subnet predicts
  the same label as the full network (the teacher).
* :func:`probability_loyalty` - ``1 - sqrt(JS(P_teacher || P_subnet))``
  averaged over inputs, with the Jensen-Shannon divergence in bits (log base
  2), so JS and the loyalty both lie in [0, 1]: 1 for identical output
  distributions, 0 for distributions with disjoint support. ``sqrt(JS)`` is
  the Jensen-Shannon distance, a metric.
* :class:`SubnetEvaluator` - evaluate many architectures of one supernet on
  one split (extract -> re-calibrate -> predict), the supernet untouched;
  its fast path is :mod:`ofa.fast_evaluation`, and ``robustness(arch)``
  gives FGSM/PGD accuracy (:mod:`ofa.robustness`).
* :func:`evaluate_subnet` - the same metrics for text models (Transformers):
  loss, token accuracy, loyalty, and exact match / BLEU / chrF of decoding.

This is the one evaluation module of both model families; the family objects
(:mod:`ofa.families`) pick the right entry point for a supernet.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import BackendUnavailableError, DataError

LN2 = math.log(2.0)


# --- BatchNorm re-calibration ---------------------------------------------------------------------------------
def _batches(data, num_images: int, batch_size: int) -> Iterable[torch.Tensor]:
    """Image batches from a tensor, an ImageDataset or an iterable of batches,
    stopping after ``num_images`` images."""
    from .data import ImageDataset, fixed_subset

    if isinstance(data, ImageDataset):
        data = fixed_subset(data, num_images)
        for start in range(0, len(data), batch_size):
            yield data.get_batch(np.arange(start, min(start + batch_size, len(data))))[0]
        return
    if isinstance(data, torch.Tensor):
        data = data[:num_images]
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]
        return
    seen = 0
    for batch in data:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = images[:num_images - seen]
        if len(images):
            yield images
        seen += len(images)
        if seen >= num_images:
            return


@torch.no_grad()
def recalibrate_bn(model: nn.Module, data, num_images: int = 2000, batch_size: int = 256,
                   resolution: int | None = None) -> int:
    """Replace the running statistics of every BatchNorm layer of ``model`` by
    the exact mean and (unbiased) variance of its inputs over ``num_images``
    images of ``data`` (all, if fewer).

    ``data``: an (N, C, H, W) tensor, an :class:`ofa.data.ImageDataset` (its
    fixed subset :func:`ofa.data.fixed_subset`) or an iterable of batches
    (tensors or ``(images, labels)``); ``resolution`` resizes the images. As in
    training, each batch is normalised with its own statistics on the way
    through. Channels an elastic BN layer does not use in the active subnet
    keep their old statistics. The model's train/eval modes are restored.
    Returns the number of images used."""
    from .data import resize
    from .fast_evaluation import recalibrate_bn_batches

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    batches = ((resize(images, resolution) if resolution is not None else images).to(device)
               for images in _batches(data, num_images, batch_size))  # streamed: one batch in memory at a time
    return recalibrate_bn_batches(model, batches)


# --- metrics -------------------------------------------------------------------------------------------------
def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * (logits.argmax(dim=-1) == labels).double().mean().item()


def label_loyalty(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Fraction (0..1) of inputs where the argmax of ``student`` equals that of
    ``teacher`` (logits or probabilities, shape (N, classes))."""
    if student.shape != teacher.shape:
        raise ValueError(f"student outputs {tuple(student.shape)} and teacher outputs {tuple(teacher.shape)} differ")
    return (student.argmax(dim=-1) == teacher.argmax(dim=-1)).double().mean().item()


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row Jensen-Shannon divergence in bits (in [0, 1]) of probability rows."""
    p, q = p.double(), q.double()
    m = 0.5 * (p + q)
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(dim=-1)
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(dim=-1)
    return (0.5 * (kl_pm + kl_qm) / LN2).clamp(0.0, 1.0)


def probability_loyalty(student: torch.Tensor, teacher: torch.Tensor, from_logits: bool = True) -> float:
    """Mean over inputs of ``1 - sqrt(JS(teacher || student))`` (JS in bits),
    in [0, 1]. Pass probabilities with ``from_logits=False``."""
    if student.shape != teacher.shape:
        raise ValueError(f"student outputs {tuple(student.shape)} and teacher outputs {tuple(teacher.shape)} differ")
    if from_logits:
        student, teacher = F.softmax(student.double(), dim=-1), F.softmax(teacher.double(), dim=-1)
    return (1.0 - js_divergence(teacher, student).sqrt()).mean().item()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for ``images``, batch by batch."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    outputs = [model(images[i:i + batch_size].to(param.device)).float().cpu()
               for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(outputs)


# --- many subnets of one supernet ------------------------------------------------------------------------------
class SubnetEvaluator:
    """Evaluates architectures of ``supernet`` on one split of ``data``
    (:class:`ofa.data.DataSplits`): each subnet is extracted (so the supernet
    is not modified), BN re-calibrated on the fixed training subset at the
    subnet's resolution, and scored against the labels and against the full
    network's outputs (the teacher: the largest subnet, itself re-calibrated).

    ``evaluate(arch)`` returns ``{"arch", "top1", "loss", "macs", "params",
    "label_loyalty", "probability_loyalty", "split", "resolution"}``;
    ``evaluate_many(archs)`` does it for a list, one resolution at a time.

    ``fast=True`` (default) runs :mod:`ofa.fast_evaluation` (images prepared
    once per resolution, channels-last, batched exact BN statistics);
    ``fast=False`` the reference path (:func:`recalibrate_bn`, :func:`predict`).
    Both give the same results up to float rounding
    (``benchmarks/evaluation_speed.py``). ``batch_size`` is the calibration
    batch (BN normalises each with its own statistics, so it is part of the
    result); prediction batches do not change results."""

    def __init__(self, supernet: nn.Module, data, split: str = "val", calib_images: int = 2000,
                 batch_size: int = 256, teacher_arch=None, fast: bool = True):
        from .data import fixed_subset

        if split not in ("train", "val", "test"):
            raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.supernet, self.space = supernet, supernet.space
        self.split, self.batch_size, self.fast = split, batch_size, fast
        self._prepared: dict[int, object] = {}
        self.eval_set = getattr(data, split)
        self.calib_set = fixed_subset(data.train, calib_images)
        self._images: dict[tuple[str, int], torch.Tensor] = {}
        self.labels = torch.from_numpy(self.eval_set.labels)
        teacher = self.space.largest() if teacher_arch is None else self.space.parse(teacher_arch)
        self.teacher_arch = teacher
        self.teacher_logits = self._logits(teacher)

    def _tensor(self, which: str, resolution: int) -> torch.Tensor:
        key = (which, resolution)
        if key not in self._images:
            dataset = self.calib_set if which == "calib" else self.eval_set
            self._images[key] = dataset.tensors(resolution=resolution)[0]
        return self._images[key]

    def _prepared_images(self, resolution: int):
        from .fast_evaluation import PreparedImages

        if resolution not in self._prepared:
            param = next(self.supernet.parameters())
            self._prepared[resolution] = PreparedImages.build(self._tensor("calib", resolution)[:2000],
                                                              self._tensor("eval", resolution), self.batch_size,
                                                              param.device)
        return self._prepared[resolution]

    def release(self, keep_resolution: int | None = None) -> None:
        """Forget the prepared images of every resolution but ``keep_resolution``."""
        self._images = {k: v for k, v in self._images.items() if k[1] == keep_resolution}
        self._prepared = {k: v for k, v in self._prepared.items() if k == keep_resolution}

    def subnet(self, arch) -> nn.Module:
        """The static subnet of ``arch`` with re-calibrated BN statistics."""
        arch = self.space.parse(arch)
        static = self.supernet.extract(arch)
        if self.fast:
            from .fast_evaluation import prepare_subnet

            return prepare_subnet(static, self._prepared_images(arch.resolution))
        recalibrate_bn(static, self._tensor("calib", arch.resolution), batch_size=self.batch_size)
        return static.eval()

    def _logits(self, arch) -> torch.Tensor:
        arch = self.space.parse(arch)
        if self.fast:
            from .fast_evaluation import fold_batchnorm, predict_fast

            return predict_fast(fold_batchnorm(self.subnet(arch).eval()),
                                self._prepared_images(arch.resolution).evaluation)
        return predict(self.subnet(arch), self._tensor("eval", arch.resolution), self.batch_size)

    def robustness(self, arch, attacks=("fgsm", "pgd"), epsilon: float | None = None, steps: int | None = None,
                   images: int = 500, seed: int = 0) -> dict:
        """Clean and adversarial top-1 and attack success rate of the subnet
        ``arch`` (re-calibrated, as :meth:`evaluate` scores it) under each of
        ``attacks`` (:mod:`ofa.robustness`: FGSM, PGD with ``steps`` steps;
        ``epsilon`` in normalised input units, adversarial images kept within
        the normalised pixel range), on a fixed random subset of ``images``
        images of the split: ``{attack: {...}}``."""
        from .robustness import DEFAULT_EPSILON, DEFAULT_PGD_STEPS, attack_accuracy, pixel_bounds

        arch = self.space.parse(arch)
        epsilon = DEFAULT_EPSILON if epsilon is None else epsilon
        steps = DEFAULT_PGD_STEPS if steps is None else steps
        count = min(int(images), len(self.labels))
        chosen = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(len(self.labels))[:count]))
        inputs = self._tensor("eval", arch.resolution)[chosen]
        bounds = pixel_bounds(self.eval_set.mean, self.eval_set.std)
        model = self.subnet(arch)
        return {attack: attack_accuracy(model, inputs, self.labels[chosen], attack, epsilon, steps, bounds=bounds,
                                        batch_size=self.batch_size) for attack in attacks}

    def evaluate_many(self, archs, progress=None) -> list[dict]:
        """:meth:`evaluate` for each of ``archs`` (results in their order),
        grouped by resolution so that each resolution's images are prepared
        once and dropped when its group is done. ``progress``: an optional
        callable taking each result as it comes."""
        archs = [self.space.parse(a) for a in archs]
        results: list[dict | None] = [None] * len(archs)
        order = sorted(range(len(archs)), key=lambda i: archs[i].resolution)
        for position, i in enumerate(order):
            results[i] = self.evaluate(archs[i])
            if progress is not None:
                progress(results[i])
            following = order[position + 1] if position + 1 < len(order) else None
            if following is None or archs[following].resolution != archs[i].resolution:
                self.release()
        return results

    def evaluate(self, arch) -> dict:
        arch = self.space.parse(arch)
        logits = self.teacher_logits if arch == self.teacher_arch else self._logits(arch)
        cost = self.space.cost(arch)
        return {
            "arch": arch.to_dict(),
            "top1": top1_accuracy(logits, self.labels),
            "loss": F.cross_entropy(logits, self.labels).item(),
            "macs": int(cost.macs),
            "params": int(cost.params),
            "label_loyalty": label_loyalty(logits, self.teacher_logits),
            "probability_loyalty": probability_loyalty(logits, self.teacher_logits),
            "split": self.split,
            "resolution": int(arch.resolution),
        }


__all__ = ["SubnetEvaluator", "js_divergence", "label_loyalty", "predict", "probability_loyalty",
           "recalibrate_bn", "top1_accuracy"]


# --- text models (Transformers) ------------------------------------------------------------------------------
def _seq2seq_logits(model, src: torch.Tensor, tgt: torch.Tensor):
    """(logits of the real target positions (N, vocab), their labels): the model reads
    ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``; padding is not scored."""
    from .models.transformer import PAD

    labels = tgt[:, 1:]
    keep = labels.ne(PAD)
    return model(src, tgt[:, :-1])[keep], labels[keep]


def _masked_lm_logits(model, inputs: torch.Tensor, labels: torch.Tensor):
    """(logits of the masked positions (N, vocab), their labels)."""
    keep = labels.ne(-100)
    return model(inputs)[keep], labels[keep]


def translation_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Exact-match accuracy (%), corpus BLEU and chrF (sacrebleu)."""
    try:
        import sacrebleu
    except ImportError as error:
        raise BackendUnavailableError("BLEU/chrF need sacrebleu: pip install sacrebleu "
                                      "(or pip install 'ofa-hw[nlp]')") from error

    exact = 100.0 * sum(h == r for h, r in zip(hypotheses, references)) / max(1, len(references))
    return {"exact_match": exact,
            "bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score,
            "chrf": sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score}


@torch.no_grad()
def evaluate_subnet(model, data, split: str = "val", limit: int | None = None, batch_size: int = 250,
                    decode: bool = True, beam_size: int = 1, seed: int = 0, mask_prob: float = 0.15,
                    teacher=None) -> dict:
    """Metrics of ``model`` (a static network, or a supernet at its active
    subnet) on a split, in eval mode: ``val_loss`` (mean token cross entropy,
    no smoothing - the fitness search uses) and token accuracy; for
    encoder-decoder models with ``decode`` the exact match, BLEU and chrF of
    greedy (or beam) decoding; encoder-only masked-LM models are scored on a
    fixed masking. With a ``teacher`` (e.g. the largest subnet, extracted):
    label and probability loyalty (:mod:`ofa.evaluation`) of the token
    predictions to the teacher's."""
    from .data.text import detokenize, mask_tokens
    from .models.transformer import beam_search, greedy_decode

    models = [model] + ([teacher] if teacher is not None else [])
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    device = next(model.parameters()).device
    total, count, correct = 0.0, 0, 0
    hypotheses, student_logits, teacher_logits = [], [], []
    generator = torch.Generator().manual_seed(seed)
    for src, tgt in data.batches(split, batch_size, limit=limit):
        src, tgt = src.to(device), tgt.to(device)
        if model.space.has_decoder:
            batch = (src, tgt)
            logits, labels = _seq2seq_logits(model, *batch)
            if decode:
                out = greedy_decode(model, src) if beam_size == 1 else beam_search(model, src, beam_size)
                hypotheses += [detokenize(data.tgt_vocab.decode(row), data.level) for row in out.tolist()]
            logits_of = _seq2seq_logits
        else:
            inputs, labels = mask_tokens(src.cpu(), len(data.src_vocab), generator, mask_prob)
            batch = (inputs.to(device), labels.to(device))
            logits, labels = _masked_lm_logits(model, *batch)
            logits_of = _masked_lm_logits
        loss = F.cross_entropy(logits, labels) if len(labels) else logits.sum()
        if teacher is not None:
            student_logits.append(logits)
            teacher_logits.append(logits_of(teacher, *batch)[0])
        total += loss.item() * len(labels)
        count += len(labels)
        correct += int((logits.argmax(-1) == labels).sum())
    for m, mode in zip(models, modes):
        m.train(mode)
    result = {"val_loss": total / max(1, count), "token_accuracy": 100.0 * correct / max(1, count)}
    if teacher is not None:
        student, reference = torch.cat(student_logits), torch.cat(teacher_logits)
        result.update(label_loyalty=100.0 * label_loyalty(student, reference),
                      probability_loyalty=100.0 * probability_loyalty(student, reference))
    if hypotheses:
        result.update(translation_scores(hypotheses, data.references(split, limit)))
    return result


