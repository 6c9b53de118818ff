"""A real two-node Ray cluster that lives only on loopback, for the Ray tests and benchmarks.

Everything runs inside a network namespace holding nothing but `lo` (`unshare --net`, root needed): left alone, Ray
binds the machine's outward address and probes a public resolver, and no test traffic may leave 127.0.0.1. Inside,
`ray start --head` and a second `ray start --address` give two nodes on 127.0.0.1; then the given Python script runs
with RAY_ADDRESS set, and the cluster is stopped whatever happens."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAD_PORT = 6391


def loopback_unavailable() -> str | None:
    """Why a loopback-only cluster cannot be started here (None when it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is not installed"
    if os.geteuid() != 0:
        return "a network namespace needs root (unshare --net)"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'rsrt[ray]')"
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare --net failed: {probe.stderr.strip()}"


def run_on_loopback_cluster(script: Path, args: list[str], cpus_per_node: int = 2, nodes: int = 2,
                            timeout: float = 900, log_dir: Path | None = None,
                            node_python: Path | None = None) -> subprocess.CompletedProcess:
    """Start `nodes` Ray nodes on 127.0.0.1 in a fresh network namespace, run `python script *args`, stop them.

    node_python: the Python of the environment the nodes (and so their workers) run in; default this one's."""
    ray = str(Path(node_python or sys.executable).with_name("ray"))
    logs = Path(log_dir or "/tmp")
    start = [f"{shlex.quote(ray)} start --head --node-ip-address 127.0.0.1 --port {HEAD_PORT} --num-cpus {cpus_per_node} "
             f"--include-dashboard false --disable-usage-stats > {logs}/ray-head.log 2>&1"]
    start += [f"{shlex.quote(ray)} start --address 127.0.0.1:{HEAD_PORT} --node-ip-address 127.0.0.1 "
              f"--num-cpus {cpus_per_node} > {logs}/ray-node{n}.log 2>&1" for n in range(1, nodes)]
    run = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {' '.join(shlex.quote(a) for a in args)}"
    body = (f"ip link set lo up && {' && '.join(start)} && {run}; code=$?; "
            f"{shlex.quote(ray)} stop --force > /dev/null 2>&1; exit $code")
    # Token authentication is switched off: the cluster is reachable only inside this private loopback namespace, and
    # a token left by another cluster on the machine would otherwise lock the driver out.
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{HEAD_PORT}", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run(["unshare", "--net", "sh", "-c", body], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)
