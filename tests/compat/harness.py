"""Run a Keras-idiom script under Keras and under lamina, and compare what each wrote.

A script is plain user code: it imports keras, computes, and writes a JSON dict of results to the
path in the COMPAT_OUT environment variable. The lamina run is the same file with its import lines
rewritten (`import keras` -> `import lamina as keras`, `from keras[.x] import` -> `from lamina[.x]
import`) and nothing else, which `port_to_lamina` checks line by line.
"""

import fnmatch
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).parent / "scripts"
SRC = Path(__file__).resolve().parents[2] / "src"
TIMEOUT_S = 150

_IMPORT_REWRITES = [
    (re.compile(r"^(\s*)import keras(\s+as\s+\w+)?\s*$"),
     lambda m: f"{m.group(1)}import lamina as {(m.group(2) or ' as keras').split()[-1]}"),
    (re.compile(r"^(\s*)from keras import (.*)$"), lambda m: f"{m.group(1)}from lamina import {m.group(2)}"),
    (re.compile(r"^(\s*)from keras\.([\w.]+) import (.*)$"),
     lambda m: f"{m.group(1)}from lamina.{m.group(2)} import {m.group(3)}"),
]


def port_to_lamina(source):
    """The script with only its keras import lines pointed at lamina; every other line unchanged."""
    if "lamina" in source:
        raise AssertionError("a compat script must not mention lamina: the port is the import alone")
    ported = []
    for line in source.splitlines():
        for pattern, rewrite in _IMPORT_REWRITES:
            match = pattern.match(line)
            if match:
                line = rewrite(match)
                break
        ported.append(line)
    left = [line for line in ported if re.match(r"\s*(import|from) keras\b", line)]
    assert not left, f"import lines the port cannot rewrite: {left}"
    changed = [(a, b) for a, b in zip(source.splitlines(), ported) if a != b]
    assert changed, "the script imports nothing from keras"
    for before, after in changed:
        assert re.match(r"\s*(import|from) keras\b", before) and "lamina" in after, (before, after)
    return "\n".join(ported) + "\n"


@dataclass
class Run:
    returncode: int
    results: dict
    stderr: str
    workdir: Path

    def failure(self, framework, script):
        tail = "\n".join(self.stderr.strip().splitlines()[-15:])
        return f"{script} failed under {framework} (exit {self.returncode}); last lines:\n{tail}"


def start(script_path, framework, workdir, args=()):
    """Start the script (ported to lamina when framework == 'lamina') in workdir; returns a Popen."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(script_path).read_text()
    runnable = workdir / f"_{framework}_{Path(script_path).name}"
    runnable.write_text(port_to_lamina(source) if framework == "lamina" else source)
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               COMPAT_OUT=str(workdir / f"{runnable.stem}.json"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), str(SCRIPTS),
                                                        os.environ.get("PYTHONPATH")])))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.Popen([sys.executable, str(runnable), *args], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process, workdir):
    try:
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        stderr += f"\n(timed out after {TIMEOUT_S} s)"
    out = Path(process.args[1]).with_suffix(".json")
    results = json.loads(out.read_text()) if process.returncode == 0 and out.exists() else {}
    return Run(process.returncode, results, stderr, workdir)


@dataclass
class Spec:
    """How to compare one script's results.

    atol: the default absolute tolerance for numbers (weights are shared, so 1e-5 by default).
    tolerances: {key pattern: atol} for keys computed after deterministic training, where float32
        sums in a different order drift by more than 1e-5 over a few hundred steps.
    bands: {key pattern: (low, high)} for stochastic keys: each run's value must lie in the band on
        its own (the two frameworks draw different random numbers, so they cannot be compared to
        each other value by value).
    requires: modules that must import for Keras itself to run the script; skipped otherwise.
    lamina_differs: {key pattern: (lamina's value, why)} for a documented difference (README,
        "Porting a Keras script"): lamina's run must give that value, Keras' is not compared.
    """

    atol: float = 1e-5
    tolerances: dict = field(default_factory=dict)
    bands: dict = field(default_factory=dict)
    requires: tuple = ()
    lamina_differs: dict = field(default_factory=dict)


def _lookup(patterns, key):
    key = re.sub(r"\[\d+\]", "", key)
    return next((value for pattern, value in patterns.items() if fnmatch.fnmatchcase(key, pattern)), None)


def differences(expected, actual, spec, key=""):
    """Human-readable lines, one per value of actual that does not match expected under spec."""
    documented = _lookup(spec.lamina_differs, key)
    if documented is not None:
        value, _ = documented
        return [] if value is None or actual == value else [
            f"{key}: lamina {actual!r}, documented as {value!r} ({documented[1]})"]
    band = _lookup(spec.bands, key)
    if band is not None:
        return [line for label, value in (("keras", expected), ("lamina", actual))
                for line in _outside_band(value, band, f"{key} ({label})")]
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f"{key or 'results'}: keys differ: keras-only {sorted(set(expected) - set(actual))}, "
                    f"lamina-only {sorted(set(actual) - set(expected))}"]
        return [line for k in expected
                for line in differences(expected[k], actual[k], spec, f"{key}.{k}" if key else k)]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{key}: lengths differ: keras {len(expected)}, lamina {len(actual)}"]
        lines = [line for i, (e, a) in enumerate(zip(expected, actual))
                 for line in differences(e, a, spec, f"{key}[{i}]")]
        return lines[:1] + ([f"{key}: {len(lines) - 1} more differences"] if len(lines) > 1 else [])
    if _is_number(expected) and _is_number(actual):
        atol = _lookup(spec.tolerances, key) or spec.atol
        close = math.isclose(expected, actual, rel_tol=atol, abs_tol=atol) or (
            math.isnan(expected) and math.isnan(actual))
        return [] if close else [f"{key}: keras {expected!r} vs lamina {actual!r} (atol {atol})"]
    return [] if expected == actual else [f"{key}: keras {expected!r} vs lamina {actual!r}"]


def _outside_band(value, band, key):
    values = value if isinstance(value, list) else [value]
    low, high = band
    bad = [v for v in values if not (_is_number(v) and low <= v <= high)]
    return [f"{key}: {_short(bad)} outside the band [{low}, {high}]"] if bad else []


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
