"""The callback base: hooks the tuner calls around fitting, epochs, batches and validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class Callback:
    """Override the hooks you need; each gets the tuner, whose ``state`` holds epoch, step, loss and metrics.

    ``order`` sorts callbacks (stable; lower runs first): checkpoints run last so they see what the others did.
    ``state_dict``/``load_state_dict`` let a resumed run continue a callback's bookkeeping exactly.
    ``main_rank_only``: in distributed training, run only on rank 0 (callbacks that write files or print);
    the others run on every worker, which all hold the same weights and so reach the same decisions.
    """

    order: ClassVar[int] = 0
    main_rank_only: ClassVar[bool] = False

    def on_fit_begin(self, tuner: BaseTuner) -> None:
        """Before the first epoch (also before a checkpoint is restored)."""

    def on_epoch_begin(self, tuner: BaseTuner) -> None:
        """At the start of each epoch, ``tuner.state.epoch`` is 0-based."""

    def on_train_batch_begin(self, tuner: BaseTuner) -> None:
        """Before the train step of batch ``tuner.state.batch_index``."""

    def on_train_batch_end(self, tuner: BaseTuner) -> None:
        """After the train step; ``tuner.state.last_loss`` holds its loss."""

    def on_val_begin(self, tuner: BaseTuner) -> None:
        """Before the evaluation that ends each epoch (only when there is something to evaluate)."""

    def on_val_end(self, tuner: BaseTuner) -> None:
        """After evaluation; ``tuner.state.metrics`` holds this epoch's metrics."""

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        """After evaluation; the epoch's record is ``tuner.state.records[-1]``."""

    def on_fit_end(self, tuner: BaseTuner) -> None:
        """After the last epoch (or an early stop)."""

    def on_exception(self, tuner: BaseTuner, exception: BaseException) -> None:
        """When fitting raises; the exception propagates afterwards."""

    def state_dict(self) -> dict[str, Any]:
        """What a training checkpoint stores for this callback."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
