"""Connecting to a Ray cluster, with one clear line for each way it can fail before any image is sent.

An address is `auto` (RAY_ADDRESS, else a cluster already running on this machine), `local` (start a one-machine
cluster in this process) or `HOST:PORT` of a head node (`ray start --head` prints it)."""

from __future__ import annotations

import os
import re
import socket
import threading

from ..logsafe import redact

AUTO, LOCAL = "auto", "local"
_HOST_PORT = re.compile(r"^(?:ray://)?(?P<host>[A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
REACH_TIMEOUT_S = 3.0


class ClusterError(RuntimeError):
    """The cluster cannot be used: unreachable, or its workers cannot run the project."""


_KEEPER_LOCK = threading.Lock()


def _start_keeper(values: dict[str, str]):
    """A SecretKeeper on this node holding `values` (RuntimeError when no cluster is connected)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not ray.is_initialized():
        raise RuntimeError("WorkerSecrets travel only to the workers of a connected Ray cluster")
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    keeper = ray.remote(SecretKeeper).options(num_cpus=0, scheduling_strategy=here).remote()
    ray.get(keeper.keep.remote(values))  # a direct call to the actor: its argument is not kept by Ray
    return keeper


class SecretKeeper:
    """A Ray actor of the job, beside the driver: holds the secrets in its memory and answers them to the job's tasks
    and actors (small answers travel inside the reply, never through the object store, so never spilled)."""

    def __init__(self):
        self._secrets: dict = {}

    def keep(self, secrets: dict) -> None:
        self._secrets = dict(secrets)

    def secrets(self) -> dict:
        return dict(self._secrets)


class WorkerSecrets:
    """The secrets of a job, taken from where the command runs, for its tasks and actors: environment variables (API
    keys), which each worker sets in its own process only (`install`), and server URLs with credentials, which travel
    masked in the backend config (`seal`) and are put back on the worker (`unseal`). Never a runtime environment:
    Ray's runtime-env agent logs those in clear text on every node. What travels to a worker (a task's argument, an
    actor's constructor argument, which Ray Data keeps in its object store) is a handle to the job's SecretKeeper,
    never a value; its repr names the variables only."""

    def __init__(self, names: tuple[str, ...] = (), urls: tuple[str, ...] | list[str] = ()):
        env = {name: os.environ[name] for name in dict.fromkeys(names) if os.environ.get(name)}
        self._secrets: dict | None = {"env": env, "urls": {redact(u): u for u in urls if redact(u) != u}}
        self._names, self._keeper = sorted(env), None

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def __repr__(self) -> str:
        return f"WorkerSecrets({', '.join(self.names) or 'none'})"

    def __getstate__(self) -> dict:
        """A handle to the keeper (started on first use, on this node), never the values."""
        with _KEEPER_LOCK:
            if self._secrets and any(self._secrets.values()) and self._keeper is None:
                self._keeper = _start_keeper(self._secrets)
        return {"names": self._names, "keeper": self._keeper}

    def __setstate__(self, state: dict) -> None:
        self._secrets, self._names, self._keeper = None, state["names"], state["keeper"]

    def _held(self) -> dict:
        if self._secrets is None:
            import ray

            self._secrets = ray.get(self._keeper.secrets.remote()) if self._keeper is not None else {}
        return self._secrets

    def install(self) -> None:
        """Set the variables in this process (the node's own value is kept when the command has none)."""
        os.environ.update(self._held().get("env", {}))

    def seal(self, config: dict) -> dict:
        """The backend config as it travels: every server URL with its credentials masked."""
        urls = config.get("base_url")
        if not urls:
            return config
        return {**config, "base_url": redact(urls) if isinstance(urls, str) else [redact(u) for u in urls]}

    def unseal(self, config: dict) -> dict:
        """The backend config with the masked server URLs given back their credentials."""
        urls, whole = config.get("base_url"), self._held().get("urls", {})
        if not urls or not whole:
            return config
        return {**config, "base_url": whole.get(urls, urls) if isinstance(urls, str) else [whole.get(u, u) for u in urls]}


def check_address(address: str | None) -> str:
    """The address in its normal form; ValueError naming the accepted forms for anything else (before any work)."""
    address = (address or AUTO).strip()
    if address in (AUTO, LOCAL) or _HOST_PORT.match(address):
        return address
    raise ValueError(f"--ray {address!r} is not a Ray address; give 'auto' (RAY_ADDRESS or a cluster running here), "
                     "'local' (start one on this machine) or HOST:PORT of the head node, e.g. 10.0.0.5:6379")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=REACH_TIMEOUT_S):
            return True
    except OSError:
        return False


def connect(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Join (or start, for 'local') the cluster and check that every node's workers import this project; returns
    {"address", "nodes", "cpus"}. ClusterError with one line naming the fix otherwise. No runtime environment is
    set: API keys travel as WorkerSecrets."""
    import ray

    address = check_address(address)
    if ray.is_initialized():
        return _describe(ray)
    target = os.environ.get("RAY_ADDRESS") if address == AUTO else address
    match = _HOST_PORT.match(target or "")
    if match and not _reachable(match["host"], int(match["port"])):
        raise ClusterError(f"no Ray cluster answers at {target}: start one there with `ray start --head --port "
                           f"{match['port']}`, fix the address, or use --ray local")
    options = dict(logging_level="ERROR", log_to_driver=False, include_dashboard=False, configure_logging=False)
    try:
        if address == LOCAL:
            ray.init(num_cpus=num_cpus, _node_ip_address=os.environ.get("RSRT_RAY_NODE_IP", "127.0.0.1"), **options)
        else:
            ray.init(address=target or "auto", **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ClusterError(f"cannot join a Ray cluster at {target or 'auto'} ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''}); start one with `ray start --head` or "
                           "use --ray local") from None
    check_workers()
    return _describe(ray)


def _describe(ray) -> dict:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"address": ray.get_runtime_context().gcs_address, "nodes": len(nodes),
            "cpus": int(sum(n.get("Resources", {}).get("CPU", 0) for n in nodes))}


def _import_project() -> str:
    import rsrt_utils

    return rsrt_utils.__name__


def check_workers() -> None:
    """Run one small task on every alive node that imports the project; ClusterError naming the first node that
    cannot (before any image is sent)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_import_project)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    pending = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote():
               n["NodeManagerAddress"] for n in nodes}
    for ref, node in pending.items():
        try:
            ray.get(ref, timeout=120)
        except Exception as error:  # noqa: BLE001 - any failure to import on a worker is reported the same way
            cause = getattr(error, "cause", None) or error
            raise ClusterError(f"the Ray workers on node {node} cannot import the project ({type(cause).__name__}: "
                               f"{str(cause).splitlines()[-1] if str(cause) else ''}); install it on every node "
                               "(pip install rsrt, the same version) or start the workers from its environment") from None


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def root_cause(error: BaseException) -> str:
    """One line for an error raised in a worker: the innermost cause's type and first line (not Ray's wrappers)."""
    seen = error
    while True:
        inner = getattr(seen, "cause", None) or seen.__cause__
        if inner is None or inner is seen:
            break
        seen = inner
    text = str(seen).strip().splitlines()
    return f"{type(seen).__name__}: {text[0] if text else ''}"
