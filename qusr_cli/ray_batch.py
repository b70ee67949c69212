"""`qusr batch --engine ray`: the same file jobs (``runner.upscale_one``) on Ray Data.

The pipeline is Ray Data's: a dataset of (source, target) paths, ``map_batches`` with a callable
class that loads the upscaler once per actor and runs each job, and the outcomes collected on
the driver for the summary. Every node reads the inputs and writes the outputs itself, so on a
cluster the input and output folders must be on storage all nodes mount at the same path (NFS,
a cluster file system); no image goes through Ray's object store, only paths and outcome rows.

Ray is an optional extra (``pip install 'qusr[ray]'``); it is imported only here, on use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qusr_cli.errors import QusrError
from qusr_cli.options import EngineOptions
from qusr_cli.plan import Job
from qusr_cli.runner import FileOutcome, JobSettings, upscale_one

INSTALL_HINT = "the Ray engine needs Ray: pip install 'qusr[ray]'"


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 (Ray Data is its own part of the ray package)
    except ImportError:
        raise QusrError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class RayLayout:
    """Where the actors run. None in ``actors_per_node`` and ``gpus_per_actor`` means: fill each node."""

    address: str | None = None  # None starts a local Ray instance (or joins the one this process started)
    actors_per_node: int | None = None
    gpus_per_actor: float | None = None
    batch_size: int = 1  # files per call: 1 spreads uneven photo sizes best over the actors


class FileUpscaler:
    """The ``map_batches`` class: one upscaler per actor, then one ``upscale_one`` per row."""

    def __init__(self, engine: EngineOptions, settings: JobSettings):
        self.upscaler = engine.load()
        self.settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [upscale_one(self.upscaler, Job(Path(source), Path(target)), self.settings)
                    for source, target in zip(batch["source"], batch["target"], strict=True)]
        return {"source": np.array([str(o.job.source) for o in outcomes]),
                "status": np.array([o.status for o in outcomes]),
                "detail": np.array([o.detail for o in outcomes]),
                "seconds": np.array([o.seconds for o in outcomes], dtype=np.float64)}


def actor_resources(layout: RayLayout, engine: EngineOptions, nodes: list[dict]) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor) for the live ``nodes`` (``ray.nodes()`` entries).

    Defaults: with GPUs one actor per GPU; without, one actor per ``--threads`` CPUs of each node.
    """
    cpus = max(1, engine.threads or 1)
    gpus_per_node = min(node["Resources"].get("GPU", 0.0) for node in nodes)
    use_gpus = engine.device != "cpu" and gpus_per_node > 0
    gpus = layout.gpus_per_actor if layout.gpus_per_actor is not None else (1.0 if use_gpus else 0.0)
    if layout.actors_per_node is not None:
        per_node = layout.actors_per_node
    elif gpus > 0:
        per_node = max(1, int(gpus_per_node // gpus))
    else:
        per_node = max(1, int(min(node["Resources"].get("CPU", 1.0) for node in nodes) // cpus))
    return per_node * len(nodes), float(cpus), gpus


def run_on_ray(jobs: list[Job], engine: EngineOptions, settings: JobSettings,
               layout: RayLayout) -> list[FileOutcome]:
    """Run every job on Ray; the outcomes come back in the order of ``jobs``."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=layout.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = layout.address or "a local instance"
            raise QusrError(f"cannot start Ray on {where}: {str(exc).splitlines()[0]}") from None
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    actors, cpus, gpus = actor_resources(layout, engine, nodes)
    dataset = ray.data.from_items([{"source": str(job.source), "target": str(job.output)} for job in jobs])
    outcomes = dataset.map_batches(FileUpscaler, fn_constructor_kwargs={"engine": engine, "settings": settings},
                                   batch_size=layout.batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                                   num_cpus=cpus, num_gpus=gpus)
    try:
        rows = outcomes.take_all()
    except ray.exceptions.RayError as exc:
        raise QusrError(f"the Ray run failed: {_last_line(exc)}") from None
    by_source = {row["source"]: row for row in rows}
    return [FileOutcome(job, str(by_source[str(job.source)]["status"]), str(by_source[str(job.source)]["detail"]),
                        float(by_source[str(job.source)]["seconds"])) for job in jobs]


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
