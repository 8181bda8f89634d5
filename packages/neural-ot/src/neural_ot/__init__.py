"""neural-ot: Neural Optimal Transport with general cost functionals (NOT, weak costs, class- and pair-guided GNOT)."""

__version__ = "0.1.0"

from neural_ot.config import NOTConfig, NOTTrainConfig
from neural_ot.functionals import (
    Batch,
    ClassGuided,
    Functional,
    PairGuided,
    StrongCost,
    WeakQuadratic,
    parse_cost,
)
from neural_ot.solver import TransportData, fit
from neural_ot.transport import TransportMap

__all__ = [
    "Batch",
    "ClassGuided",
    "Functional",
    "NOTConfig",
    "NOTTrainConfig",
    "PairGuided",
    "StrongCost",
    "TransportData",
    "TransportMap",
    "WeakQuadratic",
    "fit",
    "parse_cost",
]
