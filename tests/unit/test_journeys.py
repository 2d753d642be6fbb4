"""A journey's module is found on sys.path or beside the catalog; real import errors stay visible."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chaos.journeys import import_near


def test_a_module_beside_the_catalog_is_found_from_a_nested_folder(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    package = tmp_path / "pkg_beside" / "journeys"
    package.mkdir(parents=True)
    (tmp_path / "pkg_beside" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "shop.py").write_text("def checkout(ctx):\n    return 'ok'\n")
    catalog_dir = tmp_path / "pkg_beside" / "conf"
    catalog_dir.mkdir()
    module = import_near("pkg_beside.journeys.shop", catalog_dir)
    assert module.checkout(None) == "ok"
    for name in ("pkg_beside.journeys.shop", "pkg_beside.journeys", "pkg_beside"):
        sys.modules.pop(name)


def test_a_module_found_nowhere_raises_the_import_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_journeys"):
        import_near("no_such_journeys.mod", tmp_path)


def test_an_import_failing_inside_the_module_is_not_hidden(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    (tmp_path / "broken_journey.py").write_text("import definitely_not_installed_xyz\n")
    with pytest.raises(ModuleNotFoundError, match="definitely_not_installed_xyz"):
        import_near("broken_journey", tmp_path)
