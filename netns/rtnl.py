"""pyroute2's IPRoute and NetlinkError without the package's __init__.

pyroute2/__init__.py imports every API the library has (NDB with sqlite3, IPDB, ipset, nl80211,
conntrack, plan9, ...) whichever submodule one asks for: ≈13 MiB of the agent's RSS, of which the
rtnetlink part we use is half. Here the package is registered unexecuted, so importing a submodule
loads that submodule only; the first access to a name the package itself exports (`pyroute2.NDB`,
`from pyroute2 import IPSet`) still runs the real __init__, so other code sees the full package.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

PACKAGE = "pyroute2"


def register_package_lazily(package: str = PACKAGE) -> types.ModuleType:
    """The package's module, registered without running its __init__ unless it was imported already."""
    loaded = sys.modules.get(package)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"no package named {package!r}")
    module = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        # `from pyroute2 import config` asks the package before importing the submodule
        if importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        module.__dict__.pop("__getattr__", None)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return getattr(module, name)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    sys.modules[package] = module
    return module


register_package_lazily()

from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["IPRoute", "NetlinkError", "register_package_lazily"]
