"""Opening the engine a `Where` names: `LocalEngine` here, `RayEngine` (connected) on a cluster."""

from __future__ import annotations

from ..engine import Engine, LocalEngine, Where


def open_engine(where: Where, config: dict | None = None) -> Engine:
    """The engine `where` names, connected; a backend that runs only on Ray is refused without a cluster."""
    if config is not None:
        where.check_backend(config)
    if where.ray is None:
        return LocalEngine(where)
    from .captioning import RayEngine

    engine = RayEngine(where)
    engine.start(config)
    return engine
