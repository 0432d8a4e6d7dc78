"""Spotify-style ids: 22 base-62 characters that encode (kind, a, b, c) of a catalog entity.

An id is a 128-bit number: a 64-bit check derived from the seed, then the kind and three indices,
passed through an invertible scramble so that neighbouring entities get unrelated-looking ids.
Decoding verifies the check, so a random well-formed id decodes to nothing.
"""

from __future__ import annotations

import hashlib
import re
from enum import IntEnum
from functools import lru_cache

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_ID_RE = re.compile(r"[0-9A-Za-z]{22}")
_MASK = (1 << 128) - 1
_M1 = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd multipliers (invertible mod 2**128)
_M2 = 0xC2B2AE3D27D4EB4F165667B19E3779F9
_M1_INV = pow(_M1, -1, 1 << 128)
_M2_INV = pow(_M2, -1, 1 << 128)


class Kind(IntEnum):
    """What an id names."""

    ARTIST = 1
    ALBUM = 2
    TRACK = 3
    SHOW = 4
    EPISODE = 5
    AUDIOBOOK = 6
    CHAPTER = 7
    PLAYLIST = 8


def is_base62_id(value: str) -> bool:
    """True for a well-formed 22-character base-62 id."""
    return _ID_RE.fullmatch(value) is not None


def _check(seed: int, kind: int, a: int, b: int, c: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{kind}:{a}:{b}:{c}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _scramble(x: int) -> int:
    x = (x * _M1) & _MASK
    x ^= x >> 64
    x = (x * _M2) & _MASK
    return x ^ (x >> 64)


def _unscramble(x: int) -> int:
    x ^= x >> 64
    x = (x * _M2_INV) & _MASK
    x ^= x >> 64
    return (x * _M1_INV) & _MASK


def encode_id(seed: int, kind: Kind, a: int, b: int = 0, c: int = 0) -> str:
    """The id of entity (kind, a, b, c) in the catalog of ``seed``."""
    payload = (_check(seed, kind, a, b, c) << 64) | (int(kind) << 56) | (a << 32) | (b << 16) | c
    x = _scramble(payload)
    chars = []
    for _ in range(22):
        x, r = divmod(x, 62)
        chars.append(ALPHABET[r])
    return "".join(reversed(chars))


@lru_cache(maxsize=65536)
def decode_id(seed: int, value: str) -> tuple[Kind, int, int, int] | None:
    """(kind, a, b, c) of an id made by :func:`encode_id` with this seed, else None (remembered: a
    crawl asks for an artist's id in several requests, and the decoding is a few microseconds)."""
    if not is_base62_id(value):
        return None
    x = 0
    for ch in value:
        x = x * 62 + _INDEX[ch]
    if x > _MASK:
        return None
    payload = _unscramble(x)
    kind_value = (payload >> 56) & 0xFF
    a = (payload >> 32) & 0xFFFFFF
    b = (payload >> 16) & 0xFFFF
    c = payload & 0xFFFF
    if kind_value not in Kind._value2member_map_:
        return None
    if payload >> 64 != _check(seed, kind_value, a, b, c):
        return None
    return Kind(kind_value), a, b, c
