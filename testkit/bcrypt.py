"""bcrypt in pure Python, for the htpasswd file of a test registry (the distribution registry
accepts only bcrypt there, and neither the `bcrypt` package nor `htpasswd` is on every
machine). OpenBSD's algorithm ($2b$: the password's bytes and a NUL, at most 72 bytes); the
Blowfish tables are the hexadecimal digits of pi, computed once. Slow (about 0.1 s at cost 4,
the lowest): for tests only, never for real passwords."""

from __future__ import annotations

import base64
import functools
import secrets

_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT = bytes.maketrans(_STD, _BCRYPT)
_MASK = 0xFFFFFFFF
_WORDS = 18 + 4 * 256  # the P-array, then the four S-boxes


def _arctan_inverse(x: int, one: int) -> int:
    """arctan(1/x) * one, by its series."""
    total = term = one // x
    x2 = x * x
    n, sign = 3, -1
    while term:
        term //= x2
        total += sign * (term // n)
        n, sign = n + 2, -sign
    return total


@functools.cache
def _pi_words() -> tuple[int, ...]:
    """The first 1042 32-bit words of pi's fraction: Blowfish's initial P-array and S-boxes."""
    bits = 32 * _WORDS
    guard = 64
    one = 1 << (bits + guard)
    pi = 16 * _arctan_inverse(5, one) - 4 * _arctan_inverse(239, one)  # Machin
    fraction = (pi >> guard) - (3 << bits)
    words = tuple((fraction >> (bits - 32 * (i + 1))) & _MASK for i in range(_WORDS))
    assert words[0] == 0x243F6A88 and words[18] == 0xD1310BA6, "pi went wrong"
    return words


class _Blowfish:
    def __init__(self) -> None:
        words = _pi_words()
        self.p = list(words[:18])
        self.s = [list(words[18 + 256 * i : 18 + 256 * (i + 1)]) for i in range(4)]

    def encipher(self, left: int, right: int) -> tuple[int, int]:
        p = self.p
        s0, s1, s2, s3 = self.s
        left ^= p[0]
        for i in range(1, 17, 2):
            f = ((s0[left >> 24] + s1[(left >> 16) & 0xFF]) & _MASK) ^ s2[(left >> 8) & 0xFF]
            right ^= ((f + s3[left & 0xFF]) & _MASK) ^ p[i]
            f = ((s0[right >> 24] + s1[(right >> 16) & 0xFF]) & _MASK) ^ s2[(right >> 8) & 0xFF]
            left ^= ((f + s3[right & 0xFF]) & _MASK) ^ p[i + 1]
        return right ^ p[17], left

    def expand(self, key: bytes, salt: bytes | None) -> None:
        """Blowfish_expandstate (with a salt) or Blowfish_expand0state (without)."""
        keys = _Words(key)
        self.p = [w ^ next(keys) for w in self.p]
        data = _Words(salt) if salt is not None else None
        left = right = 0
        for box in (self.p, *self.s):
            for i in range(0, len(box), 2):
                if data is not None:
                    left ^= next(data)
                    right ^= next(data)
                left, right = self.encipher(left, right)
                box[i], box[i + 1] = left, right


class _Words:
    """Blowfish_stream2word: big-endian 32-bit words read cyclically from `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def __iter__(self) -> _Words:
        return self

    def __next__(self) -> int:
        word = 0
        for _ in range(4):
            word = (word << 8) | self.data[self.at]
            self.at = (self.at + 1) % len(self.data)
        return word


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).translate(_TO_BCRYPT).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    std = text.encode("ascii").translate(bytes.maketrans(_BCRYPT, _STD))
    return base64.b64decode(std + b"=" * (-len(std) % 4))


def hashpw(password: str, cost: int = 4, salt: bytes | None = None) -> str:
    """`$2b$<cost>$<salt><hash>` of `password` (16 random salt bytes unless given)."""
    if not 4 <= cost <= 31:
        raise ValueError(f"bcrypt cost must be 4..31, not {cost}")
    salt = secrets.token_bytes(16) if salt is None else salt
    if len(salt) != 16:
        raise ValueError("a bcrypt salt is 16 bytes")
    key = (password.encode() + b"\0")[:72]
    state = _Blowfish()
    state.expand(key, salt)
    for _ in range(1 << cost):
        state.expand(key, None)
        state.expand(salt, None)
    text = _Words(b"OrpheanBeholderScryDoubt")
    words = [next(text) for _ in range(6)]
    for _ in range(64):
        for i in range(0, 6, 2):
            words[i], words[i + 1] = state.encipher(words[i], words[i + 1])
    digest = b"".join(w.to_bytes(4, "big") for w in words)
    return f"$2b${cost:02d}${_encode(salt)}{_encode(digest[:23])}"


def checkpw(password: str, hashed: str) -> bool:
    """Whether `hashed` ($2a$/$2b$/$2y$) is `password`'s bcrypt."""
    _, version, cost, rest = hashed.split("$")
    if version not in ("2a", "2b", "2y") or len(rest) != 53:
        raise ValueError("not a bcrypt hash")
    expected = hashpw(password, int(cost), _decode(rest[:22]))
    return secrets.compare_digest(expected[7:], hashed[7:])
