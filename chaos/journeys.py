"""Finding a Python journey's module: on sys.path, or beside the catalog that names it.

A catalog says `call: examples.shop.journeys:checkout`; users run pytest from anywhere, so when
the module is not importable as is, the catalog's directory and its parents are searched for the
folder that holds it (the way pytest's rootdir-relative imports work), and that folder is put on
sys.path for the journey's own imports.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType


def _holds(folder: Path, module_name: str) -> bool:
    relative = Path(*module_name.split("."))
    return (folder / relative).with_suffix(".py").is_file() or (
        folder / relative / "__init__.py"
    ).is_file()


def import_near(module_name: str, near: Path | None) -> ModuleType:
    """Import `module_name`; failing that, from the nearest folder above `near` that holds it."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if near is None or not err.name or not module_name.startswith(err.name):
            raise  # not found at all, or a missing import *inside* the module: say so as is
        folder = next((f for f in (near, *near.parents) if _holds(f, module_name)), None)
        if folder is None:
            raise
        sys.path.insert(0, str(folder))
        return importlib.import_module(module_name)
