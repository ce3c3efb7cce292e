"""Redis' glob matcher (``stringmatchlen`` in src/util.c, 7.0), ported byte for byte.

Lets hypothesis check thousands of key/pattern pairs exactly as ``SCAN MATCH``
and ``KEYS`` would, without a round trip each; a few cases are also checked
against the real server.
"""

from __future__ import annotations


def stringmatch(pattern: bytes, string: bytes) -> bool:
    skip = [False]
    return _match(pattern, 0, string, 0, skip)


def _match(p: bytes, pi: int, s: bytes, si: int, skip: list[bool]) -> bool:
    plen, slen = len(p), len(s)
    while pi < plen and si < slen:
        c = p[pi]
        if c == ord("*"):
            while pi + 1 < plen and p[pi + 1] == ord("*"):
                pi += 1
            if pi + 1 == plen:
                return True
            while si < slen:
                if _match(p, pi + 1, s, si, skip):
                    return True
                if skip[0]:
                    return False
                si += 1
            skip[0] = True
            return False
        if c == ord("?"):
            si += 1
        elif c == ord("["):
            pi += 1
            negate = pi < plen and p[pi] == ord("^")
            if negate:
                pi += 1
            matched = False
            while True:
                if pi < plen and p[pi] == ord("\\") and plen - pi >= 2:
                    pi += 1
                    if p[pi] == s[si]:
                        matched = True
                elif pi < plen and p[pi] == ord("]"):
                    break
                elif pi >= plen:
                    pi -= 1
                    break
                elif plen - pi >= 3 and p[pi + 1] == ord("-"):
                    start, end = p[pi], p[pi + 2]
                    if start > end:
                        start, end = end, start
                    pi += 2
                    if start <= s[si] <= end:
                        matched = True
                elif p[pi] == s[si]:
                    matched = True
                pi += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            si += 1
        else:
            if c == ord("\\") and plen - pi >= 2:
                pi += 1
            if p[pi] != s[si]:
                return False
            si += 1
        pi += 1
        if si == slen:
            while pi < plen and p[pi] == ord("*"):
                pi += 1
            break
    return pi == plen and si == slen
