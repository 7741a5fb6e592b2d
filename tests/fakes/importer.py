"""Fake modules that ``import`` finds but nobody has imported yet, as with site-packages.

Kept free of third-party imports: processes the fakes start may run a plain interpreter.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from typing import Any


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves prepared module objects to ``import``, the way site-packages would."""

    def __init__(self, modules: dict[str, types.ModuleType]) -> None:
        self.modules = modules

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        package = hasattr(self.modules[fullname], "__path__")
        return importlib.util.spec_from_loader(fullname, self, is_package=package)

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        return self.modules[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        """The module object is ready made."""


@contextmanager
def importable(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    """``modules`` can be imported for the duration; none is in ``sys.modules`` until a
    program imports it, and all are taken out again afterwards."""
    saved = {name: sys.modules.pop(name) for name in modules if name in sys.modules}
    finder = _Finder(modules)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in modules:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def install(modules: dict[str, types.ModuleType]) -> None:
    """``modules`` importable in this process for good (a process the fakes started)."""
    sys.meta_path.insert(0, _Finder(modules))
