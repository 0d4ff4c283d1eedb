"""The tuner: a framework-neutral training loop (:mod:`.base`), numpy miners, shared loss specs, callbacks,
and one backend folder per framework (``pytorch/`` today; ``keras/`` and ``paddle/`` follow the same interface).

Importing this package imports no deep-learning framework; ``finetuner.tuner.pytorch`` imports torch.
"""

from finetuner.tuner.base import BaseTuner, TunerState
from finetuner.tuner.miners import PairMiner, TripletMiner

__all__ = ["BaseTuner", "PairMiner", "TripletMiner", "TunerState"]
