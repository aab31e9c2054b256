"""Shared by the framing property tests: a stream cut into reads anywhere, fed read by read,
and the AMI framing's careful path alone (the reference its fast path must match)."""
from __future__ import annotations

from pbx_textback.core.pbx.amiframe import AmiFraming


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """data as the reads a socket could give: cut at each of `cuts` (any ints, folded in)."""
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def feed_all(framing, pieces: list[bytes]) -> list:
    """Every frame a framing gives for the reads, in order."""
    return [fr for piece in pieces for fr in framing.feed(piece)]


def careful_ami(**kw) -> AmiFraming:
    """An AmiFraming (with AmiFraming's arguments) that reads with its careful loop alone."""
    f = AmiFraming(**kw)
    f._feed_crlf = lambda buf, pos, out: pos
    return f
