"""``finetuner.tuner.defaults``: the recipe by what the model is, the schedule by steps and data size."""

from __future__ import annotations

import pytest
import torch

from finetuner.api import FitSummary
from finetuner.tuner import defaults


def test_a_pretrained_sized_model_gets_the_fine_tuning_recipe_and_a_small_one_the_from_scratch_recipe() -> None:
    small = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Linear(128, 64))
    large = torch.nn.Linear(1000, 1000)
    assert defaults.count_parameters(small) < defaults.PRETRAINED_MIN_PARAMETERS <= defaults.count_parameters(large)
    options = dict(optimizer=None, learning_rate=None, weight_decay=None, scheduler=None, warmup_steps=None,
                   epochs=None)
    scratch = defaults.resolve(small, 16, **options)
    assert (scratch.name, scratch.optimizer, scratch.learning_rate, scratch.scheduler) == (
        "from-scratch", "adam", 3e-3, "cosine")
    assert (scratch.epochs, scratch.warmup_steps) == (20, 0)
    tuned = defaults.resolve(large, 110, **options)
    assert (tuned.name, tuned.optimizer, tuned.learning_rate, tuned.weight_decay, tuned.scheduler) == (
        "pretrained", "adamw", 5e-5, 0.01, "linear")
    assert (tuned.epochs, tuned.warmup_steps) == (1, 11)  # 10% of 110 steps


@pytest.mark.parametrize(("recipe", "steps_per_epoch", "epochs"), [
    (defaults.PRETRAINED, 110, 1), (defaults.PRETRAINED, 25, 4), (defaults.PRETRAINED, 3, 10),
    (defaults.SCRATCH, 16, 20), (defaults.SCRATCH, 1563, 2), (defaults.SCRATCH, 50_000, 1),
])
def test_epochs_follow_the_steps_not_a_fixed_count(recipe: defaults.Recipe, steps_per_epoch: int, epochs: int) -> None:
    assert recipe.epochs_for(steps_per_epoch) == epochs


def test_values_given_by_the_user_are_kept() -> None:
    small = torch.nn.Linear(4, 4)
    recipe = defaults.resolve(small, 10, optimizer="sgd", learning_rate=0.1, weight_decay=0.5, scheduler="constant",
                              warmup_steps=3, epochs=2)
    assert (recipe.optimizer, recipe.learning_rate, recipe.weight_decay, recipe.scheduler) == (
        "sgd", 0.1, 0.5, "constant")
    assert (recipe.epochs, recipe.warmup_steps) == (2, 3)


def test_the_summary_says_what_was_returned_and_why() -> None:
    summary = FitSummary(monitor="mAP@R", recipe="from-scratch recipe", loss="TripletLoss", epochs_run=7,
                         start=0.43, best=0.94, best_epoch=5, reason="epoch 5 had the best mAP@R")
    text = str(summary)
    assert "0.4300 at the start, 0.9400 at epoch 5" in text and "the tuned model" in text
    summary.returned = "start"
    assert "the model as it was given" in str(summary)


def test_default_validation_holds_out_items_of_every_class_and_classes_only_when_asked() -> None:
    """The decision on open-set search (benchmarks/results/fit_quality.md): the default selects on new items of
    the user's classes, so every class stays in training; whole classes are held out only with
    validation='classes' (on digits, 10 seeds, that choice turns the closed split's 0.943 into 0.439, the untrained
    model on 9 of them)."""
    from finetuner.api import _validation_split
    from finetuner.data import digits
    from finetuner.data.splits import class_labels

    data = digits(range(10))
    train, val = _validation_split(data, None, "auto", seed=0)
    assert set(class_labels(train).tolist()) == set(class_labels(val).tolist()) == set(range(10))
    assert abs(len(val) / len(data) - 0.2) < 0.01
    train, val = _validation_split(data, None, "classes", seed=0)
    assert not set(class_labels(train).tolist()) & set(class_labels(val).tolist())
    assert len(set(class_labels(val).tolist())) == 3
