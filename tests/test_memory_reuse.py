"""lamina's malloc tuning (lamina/_memory.py): after `import lamina`, a conv/BN/ReLU model's
training steps reuse their activation memory instead of faulting it in afresh each step; with
LAMINA_MALLOC_TUNING=0 they do not (the oracle: the kernel's own count of minor page faults)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource, numpy as np, torch
import lamina
from lamina import _memory, layers
torch.set_num_threads(1)
model = lamina.Sequential([lamina.Input((150, 1)), layers.Conv1D(128, 8, padding="same"),
                           layers.BatchNormalization(), layers.Activation("relu"),
                           layers.Conv1D(128, 5, padding="same"), layers.BatchNormalization(),
                           layers.Activation("relu"), layers.GlobalAveragePooling1D(),
                           layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).standard_normal((64, 150, 1)).astype("float32")
y = np.arange(64) % 3
model.fit(x, y, batch_size=16, epochs=1, verbose=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
model.fit(x, y, batch_size=16, epochs=2, verbose=0)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": _memory.TUNED, "faults_per_step": faults / 8}))
"""


def probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_tensor_memory_is_reused_after_import():
    tuned = probe()
    if not tuned["tuned"]:
        pytest.skip("this libc does not take glibc's mallopt")
    untuned = probe(LAMINA_MALLOC_TUNING="0")
    assert untuned["tuned"] is False
    # A step's activations are ~1.2 MB each (~300 pages): untuned, glibc gives them back to the
    # OS and the next step faults them in again; tuned, they stay.
    assert untuned["faults_per_step"] > 200, untuned
    assert tuned["faults_per_step"] < untuned["faults_per_step"] / 4, (tuned, untuned)


def test_users_own_malloc_settings_are_left_alone():
    assert probe(MALLOC_TRIM_THRESHOLD_="1000000")["tuned"] is False
