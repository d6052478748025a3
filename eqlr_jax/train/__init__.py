"""Training: datasets, batches, loss, optax steps, the training loop with orbax checkpoints,
and evaluation. ``eqlr-jax train config.yaml`` and ``eqlr-jax evaluate`` call into it."""
from .batches import BatchMaker, Targets
from .config import TrainConfig, load_config
from .data import DatasetError, Frame, Keys, load_frames, reference_energies, split_indices
from .loss import LossWeights
from .trainer import Run, RunExistsError, train

__all__ = ["BatchMaker", "DatasetError", "Frame", "Keys", "LossWeights", "Run", "RunExistsError", "Targets",
           "TrainConfig", "load_config", "load_frames", "reference_energies", "split_indices", "train"]
