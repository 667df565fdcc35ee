"""The README's Python examples run as written (a newcomer follows it top to bottom)."""

import os

import pytest

from tests.markdown import python_blocks

BLOCKS = python_blocks("README.md")


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, block in enumerate(BLOCKS):
        if "onnxruntime" in block or "set_global_policy" in block or "[...]" in block:
            continue  # covered by tests/test_export.py and tests/test_mixed_precision.py
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            pytest.fail(f"README python block {i} fails: {type(e).__name__}: {e}\n{block}")
    assert os.path.exists("first.lamina")
