"""`/etc/crictl.yaml`: crictl's config, pointing it at the node's containerd so that `crictl pods`, `crictl ps`,
`crictl logs` and `crictl exec` work on a shipmate node without flags.

The file is written when absent or when it is ours (its first line is MARKER), never over a user's own; the
endpoints are the CRI socket the agent uses. `write_crictl_config` returns what it did."""
from __future__ import annotations

from pathlib import Path

from shipmate.containerd_config import write_if_changed

CRICTL_CONFIG = "/etc/crictl.yaml"
DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
MARKER = "# Written by shipmate (make up / shipmate install agent); a file without this line is left alone."


def render(endpoint: str = DEFAULT_ENDPOINT, timeout: int = 10) -> str:
    return (f"{MARKER}\n"
            f"runtime-endpoint: {endpoint}\n"
            f"image-endpoint: {endpoint}\n"
            f"timeout: {timeout}\n"
            "debug: false\n"
            "pull-image-on-create: false\n")


def is_ours(text: str) -> bool:
    return text.startswith(MARKER)


def write_crictl_config(path: Path | str = CRICTL_CONFIG, endpoint: str = DEFAULT_ENDPOINT) -> str:
    """'written', 'unchanged', or 'kept' (a file of someone else's is there)."""
    path = Path(path)
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = None
    except UnicodeDecodeError:
        return "kept"
    if current is not None and not is_ours(current):
        return "kept"
    return "written" if write_if_changed(path, render(endpoint)) else "unchanged"


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="shipmate crictl-config",
                                     description="write /etc/crictl.yaml for this node's containerd (never over "
                                                 "a file shipmate did not write)")
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="the CRI socket (unix://...)")
    parser.add_argument("--out", default=CRICTL_CONFIG)
    args = parser.parse_args(argv)
    outcome = write_crictl_config(args.out, args.endpoint)
    print(f"{args.out}: {outcome}" + (" (not written by shipmate: left as it is)" if outcome == "kept" else ""))
    return 0
