"""What the agent's process imports decides most of its RSS: the modules an idle agent never uses stay
out (each check runs in a fresh interpreter, as pytest has imported half the library already)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])


def modules_after(code: str) -> dict:
    script = f"import json, sys; sys.path.insert(0, {REPO!r})\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_agent_loads_only_the_rtnetlink_part_of_pyroute2():
    modules = modules_after("import agent.kubelet, agent.main")
    assert "pyroute2.iproute.linux" in modules
    assert not modules & {"pyroute2.ndb", "pyroute2.ndb.main", "pyroute2.ipdb", "pyroute2.ipset",
                          "pyroute2.nslink.nspopen", "pyroute2.plan9.client", "sqlite3"}


def test_the_full_pyroute2_package_is_still_there_for_whoever_asks():
    code = ("import netns.rtnl, pyroute2\n"
            "from pyroute2 import IPSet, config\n"
            "assert pyroute2.IPRoute is netns.rtnl.IPRoute and pyroute2.NDB and IPSet and config.uname\n")
    assert "pyroute2.ndb.main" in modules_after(code)


def test_a_submodule_named_from_the_package_does_not_load_everything():
    assert "pyroute2.ndb" not in modules_after("import netns.rtnl\nfrom pyroute2 import config, netlink\n")
