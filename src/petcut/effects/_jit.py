"""Lazy numba compilation: numba is imported and a kernel compiled on its first call, never at import."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()


def lazy_njit(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: compile ``func`` with ``numba.njit`` on first call (on-disk cache when it can be written)."""
    compiled: Callable[..., Any] | None = None

    @functools.wraps(func)
    def call(*args: Any) -> Any:
        nonlocal compiled
        if compiled is None:
            with _lock:
                if compiled is None:
                    compiled = _compile(func)
        return compiled(*args)

    call.py_func = func  # type: ignore[attr-defined]
    return call


def _compile(func: Callable[..., Any]) -> Callable[..., Any]:
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(func)
    except RuntimeError:  # numba found no writable cache directory: compile in memory only
        return numba.njit(cache=False, nogil=True)(func)
