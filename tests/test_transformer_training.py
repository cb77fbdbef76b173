"""Text data, the Transformer trainer (sandwich sampling, in-place
distillation, exact resume), metrics, and Bort-style extraction."""

import numpy as np
import pytest
import torch

from ofa import ConfigError, DataError, get_space
from ofa.bort import count_inference_ops, effective_parameters, extract_optimal, pareto_mask, w_coefficient
from ofa.data.text import (NUMBER_BLOCKS, TEST_BLOCK, VAL_BLOCK, Vocabulary, build_text_data, detokenize,
                           mask_tokens, tokenize)
from ofa.models.transformer import BOS, EOS, PAD
from ofa.training import get_trainer
from ofa.training.transformer import (TransformerTrainer, evaluate_subnet, fit_space_to_data, inverse_sqrt_factor,
                                      load_trained, sample_subnets, translation_scores)


@pytest.fixture(scope="module")
def numbers():
    return build_text_data("numbers", train_size=400, val_size=40, test_size=40)


def tiny_config(**train):
    return {"space": "transformer-small", "data": {"train_size": 400, "val_size": 40, "test_size": 40},
            "train": {"steps": 6, "batch_size": 16, "checkpoint_every": 3, "eval_every": 6, "warmup_steps": 2,
                      "eval_sentences": 20, "progress": False, **train}}


# --- data ------------------------------------------------------------------------------------------------
def test_number_translation_holds_out_whole_ranges(numbers):
    from num2words import num2words

    train_sources = {s for s, _ in numbers.train}
    assert len(train_sources) == 400
    test_numbers = [n for n in range(10**6) if (n // 1000) % NUMBER_BLOCKS == TEST_BLOCK][::997]
    for n in test_numbers:
        assert num2words(n, lang="en") not in train_sources
    for split, block in (("val", VAL_BLOCK), ("test", TEST_BLOCK)):
        for source, target in numbers.split(split):
            assert source not in train_sources
    assert ("ninety-nine", "quatre-vingt-dix-neuf") in numbers.train  # every number below 100 is in training
    assert numbers.src_vocab.tokens[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]


def test_number_translation_from_digits_up_to_a_billion():
    from num2words import num2words

    data = build_text_data("numbers", train_size=300, val_size=30, test_size=30, src_lang="digits", max_digits=9)
    assert data.name == "numbers-digits-fr-9digits"
    assert set(data.src_vocab.tokens[4:]) == set("0123456789")  # one token per digit
    for source, target in data.train[:50] + data.split("val"):
        number = int(source.replace(" ", ""))
        assert source == " ".join(str(number)) and target == num2words(number, lang="fr")
    for split, block in (("val", VAL_BLOCK), ("test", TEST_BLOCK)):
        numbers = [int(s.replace(" ", "")) for s, _ in data.split(split)]
        assert all((n // 1000) % NUMBER_BLOCKS == block for n in numbers)
        assert max(numbers) >= 10**6  # held-out ranges reach the millions
    assert max(int(s.replace(" ", "")) for s, _ in data.train) < 10**9
    for bad in ({"max_digits": 3}, {"max_digits": 13}, {"max_digits": 6.0}, {"src_lang": "fr"},
                {"tgt_lang": "xx"}):
        with pytest.raises(ConfigError, match="max_digits|nothing to translate|tgt_lang 'xx' unknown"):
            build_text_data("numbers", train_size=10, **bad)


def test_tokens_vocabulary_and_masking():
    text = "soixante et onze mille quatre-vingts"
    assert tokenize(text) == ["soixante", "et", "onze", "mille", "quatre", "-", "vingts"]
    assert detokenize(tokenize(text)) == text
    assert detokenize(tokenize(text, "char"), "char") == text
    vocab = Vocabulary.build([tokenize(text)])
    ids = vocab.encode(tokenize(text) + ["unseen"])
    assert ids[0] == BOS and ids[-1] == EOS and ids[-2] == 3
    assert vocab.decode(ids + [7, 7]) == tokenize(text) + ["<unk>"]
    batch = torch.tensor([[BOS, 5, 6, 7, EOS, PAD], [BOS, 8, EOS, PAD, PAD, PAD]])
    inputs, labels = mask_tokens(batch, 10, torch.Generator().manual_seed(0))
    assert (labels.ne(-100).sum(1) >= 1).all()  # every sentence predicts something
    assert labels[batch.le(EOS)].eq(-100).all()  # never special tokens


def test_users_parallel_text_files(tmp_path):
    (tmp_path / "train.en").write_text("\n".join(f"sentence {i}" for i in range(40)) + "\n")
    (tmp_path / "train.de").write_text("\n".join(f"Satz {i}" for i in range(40)) + "\n")
    data = build_text_data({"train": [tmp_path / "train.en", tmp_path / "train.de"]}, level="char")
    assert len(data.train) + len(data.val) + len(data.test) == 40 and len(data.val) == 2
    assert "S" in data.tgt_vocab.tokens
    (tmp_path / "short.de").write_text("Satz\n")
    with pytest.raises(DataError, match="lines"):
        build_text_data({"train": [tmp_path / "train.en", tmp_path / "short.de"]})
    with pytest.raises(DataError, match="does not exist"):
        build_text_data({"train": [tmp_path / "missing.en", tmp_path / "train.de"]})
    with pytest.raises(ConfigError):
        build_text_data({"dev": [tmp_path / "train.en", tmp_path / "train.de"]})


# --- training ---------------------------------------------------------------------------------------------
def test_bad_training_configs_are_refused(tmp_path):
    assert get_trainer("transformer") is TransformerTrainer
    with pytest.raises(ConfigError, match="subnets_per_step"):
        TransformerTrainer(tiny_config(subnets_per_step=1), tmp_path)
    with pytest.raises(ConfigError, match="unknown config key"):
        TransformerTrainer({**tiny_config(), "optimiser": "sgd"}, tmp_path)
    with pytest.raises(ConfigError, match="schedule"):
        TransformerTrainer(tiny_config(schedule="linear"), tmp_path)
    with pytest.raises(ConfigError, match="transformer spaces"):
        TransformerTrainer({**tiny_config(), "space": "mbv3-small"}, tmp_path)
    with pytest.raises(ConfigError, match="max_positions"):
        TransformerTrainer({**tiny_config(), "space_overrides": {"max_positions": 8}}, tmp_path)


def test_schedule_and_sampling():
    assert inverse_sqrt_factor(0, 100, 4) == 0.25 and inverse_sqrt_factor(3, 100, 4) == 1.0
    assert inverse_sqrt_factor(15, 100, 4) == pytest.approx(0.5)
    space = get_space("transformer-small")
    largest, smallest, *rest = sample_subnets(space, np.random.default_rng(0), 4, "sandwich")
    assert (largest, smallest, len(rest)) == (space.largest(), space.smallest(), 2)
    assert len(sample_subnets(space, np.random.default_rng(0), 2, "uniform")) == 2


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_training_runs_and_resumes_exactly(tmp_path, numbers):
    config = tiny_config()
    full = TransformerTrainer(config, tmp_path / "full", data=numbers)
    summary = full.run()
    assert summary["steps"] == 6 and {row["subnet"] for row in summary["history"]} == {"largest", "smallest"}
    assert "bleu" in summary["history"][-1]
    # a run killed after step 3 (its last.pt) and resumed ends with the same weights
    killed = TransformerTrainer(config, tmp_path / "killed", data=numbers)
    killed.setup()
    for step in range(3):
        killed.train_step(step)
    killed._save(tmp_path / "killed" / "last.pt", 3)
    with pytest.raises(ConfigError, match="--resume"):
        TransformerTrainer(config, tmp_path / "killed", data=numbers)
    resumed = TransformerTrainer(config, tmp_path / "killed", resume=True, data=numbers).run()
    assert resumed["segments"] == 2 and resumed["wall_seconds"] >= resumed["seconds_this_process"]
    assert summary["segments"] == 1
    a, b = _weights(tmp_path / "full" / "final.pt"), _weights(tmp_path / "killed" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, data = load_trained(tmp_path / "full" / "final.pt")
    assert data.tgt_vocab.tokens == numbers.tgt_vocab.tokens
    model.set_active(model.space.smallest())
    metrics = evaluate_subnet(model, data, "val", 8, decode=True)
    assert set(metrics) >= {"val_loss", "exact_match", "bleu", "chrf"}
    same = evaluate_subnet(model, data, "val", 8, decode=False, teacher=model.extract())  # loyal to itself
    assert same["label_loyalty"] == 100.0 and same["probability_loyalty"] == pytest.approx(100.0, abs=1e-3)


def test_encoder_only_masked_lm_and_scratch_training(tmp_path, numbers):
    config = {**tiny_config(steps=2, sampling="uniform", subnets_per_step=2), "space": "bort-small"}
    summary = TransformerTrainer(config, tmp_path / "mlm", data=numbers).run()
    assert np.isfinite(summary["history"][-1]["val_loss"])
    space = get_space("transformer-small")  # the default task's vocabularies fit: the space stays as named
    trainer = TransformerTrainer(tiny_config(steps=2), tmp_path / "scratch", data=numbers,
                                 fixed_arch=space.smallest().to_dict())
    assert trainer.run()["history"][-1]["subnet"] == "fixed"
    model, _ = load_trained(tmp_path / "scratch" / "final.pt")
    assert model.arch == trainer.fixed_arch and model.space == space


def test_space_vocabulary_grows_to_fit_the_data(numbers):
    small = get_space("transformer-small", src_vocab_size=8, tgt_vocab_size=8)
    fitted = fit_space_to_data(small, numbers)
    assert (fitted.src_vocab_size, fitted.tgt_vocab_size) == (len(numbers.src_vocab), len(numbers.tgt_vocab))
    assert fit_space_to_data(get_space("transformer-small"), numbers) == get_space("transformer-small")


def test_translation_scores():
    sentences = ["deux cent mille quatre-vingt-un", "trois mille sept cent"]
    perfect = translation_scores(sentences, sentences)
    assert perfect["exact_match"] == 100.0 and perfect["bleu"] == pytest.approx(100.0)
    assert translation_scores(["cent", "deux"], ["cent un", "deux"])["exact_match"] == 50.0


# --- Bort-style extraction ------------------------------------------------------------------------------------
def test_pareto_front_and_w_coefficient():
    points = np.array([[1, 1, 3], [2, 2, 2], [3, 3, 1], [3, 3, 3], [1, 1, 3]])
    assert pareto_mask(points).tolist() == [True, True, True, False, True]
    w = w_coefficient([1, 2], [1, 2], [2, 1], (2, 2, 1), alpha=1, beta=1, gamma=1)
    assert w.tolist() == [2.0, 1.0]


def test_extract_optimal_on_the_bort_space():
    space = get_space("bort-small")
    arch = space.largest()
    ops = count_inference_ops(space, arch)
    assert ops["multiplications"] == space.cost(arch).macs and ops["other"] > 0
    assert effective_parameters(space, arch) < space.cost(arch).params
    # a synthetic error surrogate that falls with size: the extraction itself is exact and fast
    result = extract_optimal(space, lambda a: 1.0 + 100.0 / effective_parameters(space, a) ** 0.5)
    assert len(result.records) == 300
    front = [result.records[i] for i in result.pareto]
    assert all(r["pareto"] for r in front) and result.best in result.pareto
    table = np.array([[r["parameters"], r["inference_ops"], r["error"]] for r in result.records])
    for i in result.pareto:  # no record dominates a Pareto-optimal one
        assert not np.any(np.all(table <= table[i], axis=1) & np.any(table < table[i], axis=1))
    assert result.records[result.best]["w"] == max(r["w"] for r in front)
