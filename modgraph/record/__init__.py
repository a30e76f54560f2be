"""Recording attention weights: per edge, per epoch running statistics, tidy CSV/JSON files, and figures.

``EdgeRecorder().attach(net)`` hooks every gate of a network (the gates' one hook point); see
:mod:`modgraph.record.recorder`. Figures are in :mod:`modgraph.plot`.
"""

from .io import COLUMNS, read_rows
from .recorder import EdgeRecorder, GateInfo, gate_key
from .stats import EdgeStats, RunningStats

__all__ = ["COLUMNS", "EdgeRecorder", "EdgeStats", "GateInfo", "RunningStats", "gate_key", "read_rows"]
