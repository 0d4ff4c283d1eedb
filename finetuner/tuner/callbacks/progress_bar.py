"""A rich progress bar per epoch showing the running loss and the latest metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetuner.tuner.callbacks.base import Callback

if TYPE_CHECKING:
    from finetuner.tuner.base import BaseTuner


class ProgressBar(Callback):
    """One bar per epoch; the description shows the epoch, mean loss so far and last epoch's metrics."""

    order = -10
    main_rank_only = True

    def __init__(self, console: Any = None):
        self.console = console
        self._progress: Any = None
        self._task: Any = None

    def _describe(self, tuner: BaseTuner) -> str:
        state = tuner.state
        parts = [f"epoch {state.epoch + 1}/{state.num_epochs}"]
        if state.epoch_loss is not None:
            parts.append(f"loss {state.epoch_loss:.4f}")
        parts += [f"{name} {value:.4f}" for name, value in state.metrics.items()]
        return "  ".join(parts)

    def on_epoch_begin(self, tuner: BaseTuner) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        done = tuner.state.epoch_batches
        self._task = self._progress.add_task(
            self._describe(tuner), total=tuner.state.num_batches, completed=done
        )

    def on_train_batch_end(self, tuner: BaseTuner) -> None:
        self._progress.update(self._task, advance=1, description=self._describe(tuner))

    def on_val_begin(self, tuner: BaseTuner) -> None:
        self._progress.update(self._task, description=self._describe(tuner) + "  evaluating...")

    def on_epoch_end(self, tuner: BaseTuner) -> None:
        self._progress.update(self._task, description=self._describe(tuner))
        self._stop()

    def on_exception(self, tuner: BaseTuner, exception: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
