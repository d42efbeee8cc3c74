"""neurodecode: decoding for EEG, iEEG and fMRI.

Loaders turn recordings into `Trials`; scikit-learn transformers turn
`Trials` into features or tokens; heads learn from them; one harness scores
any head with splits that hold out whole subjects, sites or sessions.
"""

__version__ = "0.1.0.dev0"

from .errors import DataError, DatasetNotFoundError, NeurodecodeError
from .registry import get_dataset, list_datasets, load_dataset, register_dataset
from .trials import Trials, concatenate_trials

__all__ = [
    "__version__",
    "Trials",
    "concatenate_trials",
    "DataError",
    "DatasetNotFoundError",
    "NeurodecodeError",
    "list_datasets",
    "load_dataset",
    "get_dataset",
    "register_dataset",
]
