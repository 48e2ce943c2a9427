"""A time budget for the detector's training, on ultralytics' own `time` argument, and a count of what ran.

ultralytics (8.4) reads `time` (hours) as "train for this long": it stops after the optimiser step that runs past
it, and after every epoch it re-estimates the epochs that fit (`ceil(time / mean epoch time)`) and rebuilds its
learning-rate schedule for them, so a budget that bites still ends annealed, with mosaic closed. Left alone it
also *stretches* a short training to fill the time, beyond the epochs asked for. `DetectorProgress` therefore
caps the re-estimate at the configured epochs (a budget only ever shortens a training) and counts what ran: the
epochs, the batches stepped, and whether the budget cut the training short.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DetectorProgress:
    """Callbacks for an ultralytics trainer: counts epochs and batches, and keeps `time` from adding epochs."""

    epochs: int
    max_minutes: float = 0.0
    epochs_completed: int = 0
    steps_completed: int = 0
    batches_in_epoch: int = 0
    last_epoch_partial: bool = False

    def train_arguments(self) -> dict:
        """The `model.train` arguments of the budget: `time` in hours, or none without a budget."""
        return {"time": self.max_minutes / 60.0} if self.max_minutes > 0 else {}

    def attach(self, model) -> None:
        """Register the callbacks on an ultralytics `YOLO` model (before `model.train`)."""
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        # Counted at the start: a batch that runs past the budget steps, then breaks before its end callback.
        model.add_callback("on_train_batch_start", self.on_train_batch_start)
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        # After ultralytics' re-estimate of the epochs (also run once more by its final evaluation: harmless).
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)

    def on_train_epoch_start(self, trainer) -> None:
        self.batches_in_epoch = 0

    def on_train_batch_start(self, trainer) -> None:
        self.batches_in_epoch += 1
        self.steps_completed += 1

    def on_train_epoch_end(self, trainer) -> None:
        # By epoch number: an epoch ultralytics redoes (its NaN recovery) counts once.
        self.epochs_completed = max(self.epochs_completed, int(trainer.epoch) + 1)
        self.last_epoch_partial = self.batches_in_epoch < len(trainer.train_loader)

    def on_fit_epoch_end(self, trainer) -> None:
        if self.max_minutes > 0 and trainer.epochs > self.epochs:
            # ultralytics stretched the training to fill the time: back to the epochs asked for, its schedule
            # rebuilt as ultralytics rebuilds it after each re-estimate.
            trainer.epochs = trainer.args.epochs = self.epochs
            trainer._setup_scheduler()
            trainer.scheduler.last_epoch = trainer.epoch
            trainer.stop |= trainer.epoch + 1 >= self.epochs

    @property
    def stopped_by_budget(self) -> bool:
        """The budget ended the training before the configured epochs were all run, whole."""
        return self.max_minutes > 0 and (self.epochs_completed < self.epochs or self.last_epoch_partial)

    def summary(self) -> dict:
        return {
            "max_minutes": float(self.max_minutes),
            "stopped_by_budget": bool(self.stopped_by_budget),
            "epochs_configured": int(self.epochs),
            "epochs_completed": int(self.epochs_completed),
            "steps_completed": int(self.steps_completed),
        }
