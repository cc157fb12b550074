"""Names a loss module defines only once torch is imported: its ``nn.Module`` classes.

A class needs its base class (``nn.Module``) when it is defined, so a loss module that must import without
torch defines its classes inside a function and hands that function to :func:`defined_on_first_access`,
whose result is the module's ``__getattr__`` (PEP 562): the first access to one of the names (``from .focal
import FocalLoss`` in a factory, a test, ``pickle.loads``) runs the function once and binds every name it
returns in the module.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["defined_on_first_access"]


def defined_on_first_access(
    module_name: str, define: Callable[[], Mapping[str, Any]], *names: str
) -> Callable[[str], Any]:
    """A module ``__getattr__`` giving ``names``, made by ``define()`` on the first access to any of them.

    ``define()`` must return exactly ``names``; a class among them gets its bare name as ``__qualname__`` so
    that pickle finds it as ``module_name.<name>``. Other names raise ``AttributeError`` without calling it.
    """
    lock = threading.Lock()
    expected = set(names)

    def __getattr__(name: str) -> Any:
        if name not in expected:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        module = sys.modules[module_name]
        with lock:  # two threads building a loss at once must get the same classes
            if name not in vars(module):
                defined = dict(define())
                if set(defined) != expected:
                    raise RuntimeError(
                        f"{module_name}: {define.__qualname__}() returned {sorted(defined)}, but "
                        f"defined_on_first_access was told {sorted(expected)}."
                    )
                for key, value in defined.items():
                    if isinstance(value, type):
                        value.__qualname__ = key
                    setattr(module, key, value)
        return vars(module)[name]

    return __getattr__
