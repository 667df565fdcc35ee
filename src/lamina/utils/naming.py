"""Names: unique layer names, snake_case, and lookups that suggest the closest valid name."""

from __future__ import annotations

import difflib
import re
from collections import defaultdict

_counters: defaultdict[str, int] = defaultdict(int)


def to_snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()  # Keras': Conv1D -> conv1d


def unique_name(base: str) -> str:
    """'dense', then 'dense_1', 'dense_2', … as Keras names layers."""
    n = _counters[base]
    _counters[base] += 1
    return base if n == 0 else f"{base}_{n}"


def reset_names() -> None:
    _counters.clear()


def lookup(kind: str, name, table: dict):
    """table[name], or a ValueError that lists the closest valid names."""
    if not isinstance(name, str):
        raise ValueError(f"Unknown {kind}: {name!r}. Pass a {kind} name (str) or object.")
    key = name if name in table else name.lower()
    if key in table:
        return table[key]
    close = difflib.get_close_matches(name.lower(), list(table), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown {kind}: {name!r}.{hint} Valid names: {', '.join(sorted(table))}."
    )
