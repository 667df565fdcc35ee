"""The file fuzzer (fuzz_files.py) in CI: a bounded number of seeded cases through every loader.
LAMINA_FUZZ_CASES=10000 runs the long mode (or: python -m tests.saving.fuzz_files --cases 10000)."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch

from tests.saving import fuzz_files

CASES = int(os.environ.get("LAMINA_FUZZ_CASES", 600))
FAILURES = ("raw", "changed", "memory", "silent", "executed", "slow")


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    return fuzz_files.fuzz(CASES, seed=int(os.environ.get("LAMINA_FUZZ_SEED", 0)),
                           folder=str(tmp_path_factory.mktemp("fuzz")))


def _failures(summary, keep):
    return {kind: [f for f in summary["failures"].get(kind, []) if keep(f)] for kind in FAILURES}


def test_model_and_weights_files_fail_only_with_saving_error(summary):
    """load_model and load_weights: no raw exception, no model changed by a failed load, no
    allocation above the budget, no damaged lamina file loaded, nothing executed, no hang."""
    found = _failures(summary, lambda f: f["loader"] != "load_checkpoint")
    assert not any(found.values()), json.dumps(found, indent=1)
    assert summary["counts"].get("refused", 0) > CASES // 2  # the mutations do damage
    assert summary["counts"].get("loaded", 0) > 0  # and some are harmless


@pytest.mark.xfail(reason="load_checkpoint assigns the weights before it reads progress.json; "
                   "the all-or-nothing checkpoint load is helper ckpt's part of issue 15",
                   strict=False)
def test_checkpoint_files_fail_only_with_saving_error(summary):
    found = _failures(summary, lambda f: f["loader"] == "load_checkpoint")
    assert not any(found.values()), json.dumps(found, indent=1)


def test_the_fuzzer_sees_a_load_that_changes_the_model_then_raises(tmp_path, monkeypatch):
    """The oracle can fail: a load_weights that assigns before it checks is reported."""
    from lamina.saving import weights

    original = weights.assign

    def careless(model, tensors, where):
        with torch.no_grad():
            next(iter(model.state_dict().values())).add_(1)
        original(model, tensors, where)

    monkeypatch.setattr(weights, "assign", careless)
    corpus = fuzz_files.make_corpus(str(tmp_path))
    base = next(b for b in corpus if b["path"].endswith("mlp.safetensors"))
    damaged = tmp_path / "damaged.safetensors"
    with open(base["path"], "rb") as f:
        damaged.write_bytes(fuzz_files._nan_safetensors(random.Random(0), f.read(), {}))
    assert fuzz_files.run_case(base, "load_weights", str(damaged), False)[0] == "changed"
