"""The file fuzzer (fuzz_files.py) in CI: a bounded number of seeded cases through every loader.
LAMINA_FUZZ_CASES=10000 runs the long mode (or: python -m tests.saving.fuzz_files --cases 10000)."""

from __future__ import annotations

import json
import os
import pickle
import random

import pytest
import torch

from tests.saving import fuzz_files

CASES = int(os.environ.get("LAMINA_FUZZ_CASES", 2500))
FAILURES = ("raw", "changed", "memory", "silent", "executed", "slow")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("corpus"))
    return folder, fuzz_files.make_corpus(folder)


@pytest.fixture(scope="module")
def summary(corpus):
    folder, files = corpus
    return fuzz_files.fuzz(CASES, seed=int(os.environ.get("LAMINA_FUZZ_SEED", 0)), folder=folder,
                           corpus=files)


def _failures(summary, keep):
    return {kind: [f for f in summary["failures"].get(kind, []) if keep(f)] for kind in FAILURES}


def test_model_and_weights_files_fail_only_with_saving_error(summary):
    """load_model and load_weights: no raw exception, no model changed by a failed load, no
    allocation above the budget, no damaged lamina file loaded, nothing executed, no hang."""
    found = _failures(summary, lambda f: f["loader"] != "load_checkpoint")
    assert not any(found.values()), json.dumps(found, indent=1)
    assert summary["counts"].get("refused", 0) > CASES // 2  # the mutations do damage
    assert summary["counts"].get("loaded", 0) > 0  # and some are harmless


def test_checkpoint_files_fail_only_with_saving_error(summary):
    found = _failures(summary, lambda f: f["loader"] == "load_checkpoint")
    assert not any(found.values()), json.dumps(found, indent=1)


# ----------------------------------------------------------------------------- the oracles can fail
def _base(corpus, suffix):
    return next(b for b in corpus[1] if b["path"].endswith(suffix))


def test_the_fuzzer_sees_a_load_that_changes_the_model_then_raises(corpus, tmp_path, monkeypatch):
    from lamina.saving import weights

    original = weights.assign

    def careless(model, tensors, where):
        with torch.no_grad():
            next(iter(model.state_dict().values())).add_(1)
        original(model, tensors, where)

    monkeypatch.setattr(weights, "assign", careless)
    base = _base(corpus, "mlp.safetensors")
    damaged = tmp_path / "damaged.safetensors"
    with open(base["path"], "rb") as f:
        damaged.write_bytes(fuzz_files._nan_safetensors(random.Random(0), f.read(), {}))
    assert fuzz_files.run_case(base, "load_weights", str(damaged), False)[0] == "changed"


def test_the_fuzzer_sees_damage_that_loads_silently(corpus, tmp_path, monkeypatch):
    from lamina.saving import weights

    monkeypatch.setattr(weights, "DIGEST_KEY", "not_there")  # the digest is no longer found,
    monkeypatch.setattr(weights, "DIGEST_COMPANION", ("not_there_either", ""))  # nor missed
    base = _base(corpus, "mlp.safetensors")
    with open(base["path"], "rb") as f:
        data = bytearray(f.read())
    data[-3] ^= 1
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(bytes(data))
    assert fuzz_files.run_case(base, "load_weights", str(damaged), False)[0] == "silent"


def test_the_fuzzer_sees_memory_spent_and_code_run(corpus, monkeypatch):
    """A loader that allocates 400 MB, or unpickles, is reported as such."""
    folder, files = corpus
    ctx = fuzz_files.payloads(folder)

    load_model, load_weights = fuzz_files.lamina.load_model, fuzz_files.lamina.Model.load_weights

    def greedy(path, **kwargs):  # (the unmutated files, loaded first, load as ever)
        if os.path.basename(path).startswith("case"):
            torch.ones(100 * 2**20)
        return load_model(path, **kwargs)

    def unpickling(model, path, **kwargs):
        if os.path.basename(path).startswith("case"):
            pickle.loads(ctx["pickle"])
            raise fuzz_files.SavingError("refused, but too late")
        return load_weights(model, path, **kwargs)

    monkeypatch.setattr(fuzz_files.lamina, "load_model", greedy)
    monkeypatch.setattr(fuzz_files.lamina.Model, "load_weights", unpickling)
    found = fuzz_files.fuzz(12, seed=3, folder=folder, corpus=[_base(corpus, "mlp.keras")])
    assert set(found["counts"]) == {"memory", "executed"}, found["counts"]
