"""Argument checks shared by the public methods."""

from __future__ import annotations

from typing import Any


def string_list(value: Any, name: str) -> list[str]:
    """``value`` as a list of strings, for a parameter that takes several.

    A single string is refused rather than read as its characters (protobuf
    and ``for`` would both take ``"read:crm:x"`` as ``["r", "e", ...]``).

    Raises:
        TypeError: When ``value`` is a string (or bytes), not iterable, or
            holds something other than strings.
    """
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"{name} takes a list of strings, not a single {type(value).__name__}")
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{name} takes a list of strings, not {type(value).__name__}") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} takes a list of strings; it holds a {type(item).__name__}")
    return items
