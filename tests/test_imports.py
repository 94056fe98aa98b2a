import importlib
import pkgutil

import pytest

import pinsage

MODULES = sorted(m.name for m in pkgutil.walk_packages(pinsage.__path__, "pinsage."))


def test_every_module_is_found():
    assert {"pinsage.cli", "pinsage.sampler.walks", "pinsage.graph.build"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_and_lists_public_names(name):
    module = importlib.import_module(name)
    for public in getattr(module, "__all__", []):
        assert hasattr(module, public), f"{name}.__all__ names missing {public}"


# Each module of the data side imported first, in a fresh interpreter: an import
# cycle only shows when its modules are entered in one particular order (a job
# entering pinsage.data.split first once failed that way).
FIRST = [m for m in MODULES if m.startswith(("pinsage.data", "pinsage.graph"))]


@pytest.mark.parametrize("name", FIRST)
def test_module_imports_first_in_a_fresh_interpreter(name):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", f"import {name}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
