"""Prompts' token ids held compactly until the engine reads them."""

from __future__ import annotations

from collections.abc import Sequence


class IdLists(Sequence):
    """Prompts' token ids as the engine protocol takes them (lists of int), made from compact
    arrays one at a time as the engine reads them: a list holds a Python int object per token
    (~36 bytes), an array 2-4 bytes, and a call carries thousands of prompts of thousands of
    tokens."""

    def __init__(self, arrays: list) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [list(a) for a in self.arrays[i]]
        return list(self.arrays[i])
