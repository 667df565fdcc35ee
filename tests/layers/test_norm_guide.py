"""The normalization guide's examples run as written."""

from pathlib import Path

import pytest

from tests.markdown import python_blocks

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "normalization.md"
EXAMPLES = python_blocks("docs/normalization.md")


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_the_guide_examples_run(code):
    exec(compile(code, str(GUIDE), "exec"), {"__name__": "guide"})


def test_the_guide_covers_every_layer():
    text = GUIDE.read_text(encoding="utf-8")
    for name in ("BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                 "SwitchableNormalization", "ConditionalBatchNormalization", "Normalization", "make_norm",
                 "lamina plot norms"):
        assert name in text, name
    assert len(EXAMPLES) >= 4
