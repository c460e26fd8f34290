"""The default model recipe: the network and training settings the library's estimators, the
benchmark, the study and the suggest command use unless told otherwise.

The config schema's own defaults (al_bnn.config) stay the published settings of Tsymbalov et
al., because the two published comparison scripts and their configs reproduce those; this recipe
is what a user gets from `BNNRegressor()`, `al-bnn-suggest` and the benchmark configs. It was
chosen with the model benchmark (`python source/bench_models.py`, README "Training recipes") on
the test metrics of kin8nm and four small shipped sets (there is no validation split yet), so
those sets' figures are optimistic for it.

Why each setting (measured on kin8nm and the model benchmark, README "Training recipes"):
- [256, 256] ReLU layers in the neural-tangent parametrisation (each layer computes
  (0.2 / sqrt(fan_in)) x W + 0.2 b), so one large Adam learning rate acts per layer as
  lr 0.2 / sqrt(fan_in), decaying linearly to zero over each phase; width 512 was no more accurate
  and cost over twice as much;
- inputs soft-clipped by 5 tanh(x / 5), so a few extreme inputs cannot dominate the first layer;
- beta-NLL with beta = 1: the mean is fitted with squared-error gradients while the noise head
  still learns the noise, so the intervals stay calibrated when the mean fits closely;
- output prior std 0.02 (it is also the output weights' weight decay) and KL weight 0.3: the KL
  weight trades initial-set accuracy against calibration, 0.3 is the middle measured;
- 160 epochs per phase but at least 800 optimiser steps, so small training sets are not
  under-trained by a few full-batch steps;
- every phase retrains from the initial weights: a network warm-started on the previous, smaller
  labelled set generalised worse, and its noise head collapsed on the memorised targets;
- calibration `holdout`: each fit (each AL phase) also trains a copy on 80% of its rows and fits two
  variance scales on the other 20% (models.calibration). The model, its picks and its RMSE are
  unchanged; its predictive intervals reach their stated coverage (docs/uci-protocol.md).
"""

from __future__ import annotations

import copy

DEFAULT_RECIPE: dict[str, dict] = {
    "net_config": {"layer_sizes": [256, 256], "activation": "relu", "input_transform": "tanh",
                   "parametrization": "ntk", "learning_rate": 0.375, "nll_beta": 1.0, "weight_std": 0.02,
                   "divergence_scale": 0.3},
    "train_schedule": {"batch_size": 256, "num_epochs": 160, "num_steps": 0, "min_steps": 800,
                       "learning_rate_schedule": "linear_decay", "retrain_from": "initial",
                       "calibration": "holdout"},
}


def default_recipe() -> dict[str, dict]:
    """A copy of DEFAULT_RECIPE's config sections, safe to modify."""
    return copy.deepcopy(DEFAULT_RECIPE)


def recipe_default(section: str, key: str, schema_default):
    """The recipe's value of section.key, else the schema's default."""
    return copy.deepcopy(DEFAULT_RECIPE.get(section, {}).get(key, schema_default))


def on_default_recipe(raw: dict) -> dict:
    """A raw config (sections of keys) with the recipe's keys filled in where it does not set them."""
    merged = dict(raw)
    for section, keys in default_recipe().items():
        given = raw.get(section, {})
        merged[section] = {**keys, **given} if isinstance(given, dict) else given
    return merged


# The default sampler: the study's recommendation (docs/study.md): LCMD on sketched gradient features
# runs on every model (bnn, dropout, ensemble), and of the recommended set's members that run on every
# model it had the lowest mean log RMSE (lcmd_exact and maxdist_exact, on the bnn's exact kernel alone,
# were lower; picked on 14 of 15 leave-one-dataset-out folds). The schema's sample_policy/family_kernel
# defaults stay the published ones; these apply to Selector, ActiveLearner and al-bnn-suggest (also
# under a --config that sets no parms.sample_policy).
DEFAULT_SAMPLER = "lcmd"
DEFAULT_SAMPLER_SETTINGS: dict[str, object] = {"family_kernel": "grad"}


def with_sampler_defaults(sampler, settings: dict) -> dict:
    """`settings` with DEFAULT_SAMPLER_SETTINGS filled in where they are not set, when `sampler` is
    the default sampler's name; other samplers' settings unchanged (the schema's defaults apply)."""
    if isinstance(sampler, str) and sampler == DEFAULT_SAMPLER:
        return {**copy.deepcopy(DEFAULT_SAMPLER_SETTINGS), **settings}
    return dict(settings)
