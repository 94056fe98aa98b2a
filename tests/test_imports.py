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
