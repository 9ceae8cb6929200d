"""The layers import downwards only: cli → services (scan, meta, service, reconcile) → store.

A type two layers share lives in the lower one (`store/rows.py`, `daemon/keys.py`): an import
from the store back up into the scan made a cycle that only import order kept working. And the
walkers, child processes of a scan, import no database code (`keys.py` is a leaf for that)."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO_ROOT

ABOVE_THE_STORE = ("cli", "meta", "reconcile", "scan", "service")


def imported_modules(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_store_imports_nothing_from_the_layers_above_it():
    upward = {
        f"{path.relative_to(REPO_ROOT)}: {module}"
        for path in sorted((REPO_ROOT / "daemon" / "store").glob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[:2] in (["daemon", layer] for layer in ABOVE_THE_STORE)
    }
    assert not upward


def test_the_walkers_module_loads_no_database_code():
    program = ("import sys, daemon.scan.walkproc\n"
               "print(*(m for m in sys.modules if m.startswith(('daemon.store', 'peewee'))))")
    loaded = subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assert loaded == []
