"""`lamina tsc … --uncertainty`: how far the test-set probabilities can be trusted.

For each way the model can give probabilities, the test accuracy, negative log-likelihood (nats)
and expected calibration error (15 bins), printed as a table, written to `<stem>_uncertainty.json`,
and drawn as reliability diagrams in `<stem>_reliability.png` (in --out, else the current folder):

- softmax: one network's `predict` (an ensemble's first member, labelled "softmax (member 1)").
- MC dropout: the mean of `predict_mc`'s passes with only the dropout layers on; n/a for a model
  without dropout layers (FCN, ResNet, …), whose passes would all equal the softmax.
- ensemble: the members' averaged probabilities, for a model with `members`; n/a otherwise.
- temperature-scaled (`--temperature-scaling`): the model's final predictions (the ensemble's, else
  the softmax) divided by one temperature before the softmax, fitted by NLL on a stratified 20% of
  the training set that is held out from training.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from rich.table import Table

from lamina.calibration import TemperatureScaling, expected_calibration_error, negative_log_likelihood
from lamina.models.training import _is_dropout
from lamina.utils import set_random_seed

MC_SAMPLES = 30
VALIDATION_FRACTION = 0.2
NUM_BINS = 15


def hold_out(data, fraction, seed):
    """(data whose training set lacks a stratified `fraction` of it, (x_held_out, y_held_out))."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(data.y_train), dtype=bool)
    for label in np.unique(data.y_train):
        members = rng.permutation(np.flatnonzero(data.y_train == label))
        held[members[:round(fraction * len(members))]] = True
    if not held.any() or held.all():
        raise ValueError(f"--temperature-scaling: the {len(held)} training series of {data.name} are too "
                         f"few to hold out {fraction:.0%} of each class for fitting the temperature.")
    train = dataclasses.replace(data, x_train=data.x_train[~held], y_train=data.y_train[~held],
                                lengths_train=data.lengths_train[~held])
    return train, (data.x_train[held], data.y_train[held])


def _wanted(args) -> bool:
    return args.uncertainty or args.temperature_scaling


def prepare(args, data, console):
    """(the data to train on, the held-out split for the temperature or None)."""
    if not _wanted(args):
        return data, None
    if args.ablate_norm:
        raise ValueError("--uncertainty and --temperature-scaling report on one model: "
                         "leave out --ablate-norm.")
    if not args.temperature_scaling:
        return data, None
    train, held_out = hold_out(data, VALIDATION_FRACTION, args.seed)
    console.print(f"temperature scaling: training on {len(train.y_train)} of the {len(data.y_train)} "
                  f"training series; the other {len(held_out[1])} are held out to fit the temperature")
    return train, held_out


def _probabilities(model, data, held_out, seed):
    """{method: test-set probabilities, or why the method does not apply}."""
    x = data.x_test
    members = getattr(model, "members", None)
    single = members[0] if members else model
    methods = {"softmax (member 1)" if members else "softmax": single.predict(x, batch_size=256, verbose=0)}
    if any(_is_dropout(m) for m in model.modules()):
        set_random_seed(seed)
        mc = model.predict_mc(x, samples=MC_SAMPLES, batch_size=256)
        methods[f"MC dropout ({MC_SAMPLES} passes)"] = mc.mean
    else:
        methods["MC dropout"] = f"{model.name} has no dropout layer"
    if members:
        methods[f"ensemble ({len(members)} members)"] = model.predict(x, batch_size=256, verbose=0)
    else:
        methods["ensemble"] = f"{model.name} is a single network"
    if held_out is not None:
        scaled = TemperatureScaling(model).fit(*held_out, batch_size=256)
        methods[f"temperature-scaled (T = {scaled.temperature:.2f})"] = scaled.predict(x, batch_size=256)
    return methods


def report(args, model, data, held_out, console) -> dict | None:
    """Print, write and return the uncertainty numbers of a trained model on data's test set
    (None without --uncertainty or --temperature-scaling)."""
    if not _wanted(args):
        return None
    import matplotlib

    matplotlib.use("Agg")
    from lamina import plots

    y = data.y_test
    methods = _probabilities(model, data, held_out, args.seed)
    which = f", the last run's model (seed {args.seed + args.runs - 1})" if args.runs > 1 else ""
    table = Table(title=f"{args.dataset} {args.model}: calibration on the {len(y)} test series{which}")
    table.add_column("method")
    for column in ("accuracy", "NLL", "ECE"):
        table.add_column(column, justify="right")
    numbers, missing = {}, {}
    for method, p in methods.items():
        if isinstance(p, str):
            missing[method] = p
            continue
        numbers[method] = {"accuracy": float((p.argmax(-1) == y).mean()),
                           "nll": negative_log_likelihood(y, p),
                           "ece": expected_calibration_error(y, p, NUM_BINS)}
        table.add_row(method, *(f"{v:.4f}" for v in numbers[method].values()))
    console.print(table)
    for method, reason in missing.items():
        console.print(f"  {method}: n/a ({reason})")
    out = args.out or "."
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"{args.dataset}_{args.model}")
    figure = plots.reliability({m: (y, p) for m, p in methods.items() if not isinstance(p, str)},
                               num_bins=NUM_BINS, title=f"{args.dataset} {args.model}, test set")
    figure.savefig(f"{stem}_reliability.png", dpi=100, bbox_inches="tight")
    with open(f"{stem}_uncertainty.json", "w") as f:
        json.dump({"methods": numbers, "not_applicable": missing, "num_bins": NUM_BINS,
                   "held_out_for_temperature": 0 if held_out is None else len(held_out[1])}, f, indent=2)
    console.print(f"wrote {stem}_reliability.png, {stem}_uncertainty.json")
    return numbers
