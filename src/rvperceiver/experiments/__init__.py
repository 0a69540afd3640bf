"""rvperceiver.experiments: the seed's studies, reproduced.

* :mod:`.theory` — the seed's DFT algebra, closed form next to numpy.
* :mod:`.tasks` — named input views, tasks and the grid of each profile (test / quick / full).
* :mod:`.runner` — ``run_experiment``, ``main_experiment`` (the CLI's entry) and ``demo``.
* :mod:`.report`, :mod:`.plots` — report.md with computed claim verdicts, PNG plots.

The runner is imported lazily so that ``import rvperceiver.experiments.theory`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_experiment", "main_experiment", "demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rvperceiver.experiments import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'rvperceiver.experiments' has no attribute {name!r}")
