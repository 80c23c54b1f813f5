"""Lazy numba compilation and its fall-back when no cache directory can be written."""

from __future__ import annotations

import numba
import numpy as np

from petcut.effects._jit import lazy_njit


def _total(a):
    s = 0.0
    for v in a:
        s += v
    return s


def test_compiles_on_first_call():
    total = lazy_njit(_total)
    assert total(np.arange(5.0)) == 10.0


def test_works_without_a_writable_cache(monkeypatch):
    real = numba.njit
    calls = []

    def njit(*args, **kwargs):
        calls.append(kwargs.get("cache"))
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function '_total': no locator available for file")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    total = lazy_njit(_total)
    assert calls == []  # nothing compiled before the first call
    assert total(np.arange(4.0)) == 6.0
    assert calls == [True, False]
