"""Tiny helpers shared by the PBX framings' replay paths. Pure."""
from __future__ import annotations


def split_at(data: bytes, cuts) -> list[bytes]:
    """`data` cut at the given byte offsets (out of range and repeated ones ignored), as a
    socket might deliver it."""
    pos, out = 0, []
    for c in sorted(set(x for x in cuts if 0 < x < len(data))):
        out.append(data[pos:c])
        pos = c
    out.append(data[pos:])
    return out
