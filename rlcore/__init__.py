"""Building blocks shared by every agent: buffers, networks, logging, checkpoints, evaluation."""

from rlcore.evaluation import evaluate

__all__ = ["evaluate"]
