"""The Python examples of a markdown document (README, guides), to run as tests."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(relative_path: str) -> list[str]:
    text = (ROOT / relative_path).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)
