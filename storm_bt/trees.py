"""Nested records of plain values (the JSON of run records, checkpoint payloads): a record
made plain, a field by its dotted name, and the dotted names of the fields where two records
differ.

A base module: no torch and nothing of the pipeline, so that both the checkpoint cache and
the merge of run folders (which reads only CSV and JSON) can use it.
"""
from __future__ import annotations

from typing import Mapping

#: what `lookup` returns for a field the record lacks
ABSENT = "<absent>"


def plain(value):
    """``value`` as it comes back from JSON: tuples become lists and keys strings,
    recursively."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def lookup(tree: Mapping, dotted: str):
    """``tree["a"]["b"]`` for ``dotted = "a.b"``; `ABSENT` when a level is missing."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ABSENT
        node = node[part]
    return node


def differences(saved, wanted, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two trees of plain values differ (a field in one
    tree only counts; lists and tuples with the same items are equal)."""
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        out = []
        for k in sorted(set(saved) | set(wanted), key=str):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in saved or k not in wanted:
                out.append(name)
            else:
                out.extend(differences(saved[k], wanted[k], name))
        return out
    if isinstance(saved, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return [] if list(saved) == list(wanted) else [prefix]
    return [] if saved == wanted else [prefix]


def short(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
