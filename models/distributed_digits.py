"""A training run for the distributed tests: one process alone, or one worker under ``torchrun`` or
``paddle.distributed.launch``.

    python models/distributed_digits.py OUT.npz [--framework torch|paddle] --losses NTXentLoss,TripletLoss
        --batch-size 32 --steps 3 [--epochs E] [--ckpt DIR [--resume]]

Trains an MLP on scikit-learn's digits with the framework's tuner (class data, the m-per-class sampler) and, on
rank 0, writes the loss of every step, the final weights and (with ``--steps 0``) the test mAP@R to ``OUT.npz``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetuner.tuner.callbacks import Callback, TrainingCheckpoint  # noqa: E402
from finetuner.tuner.miners import TripletMiner  # noqa: E402


class StepLosses(Callback):
    def __init__(self, steps: int | None):
        self.steps, self.losses = steps, []

    def on_train_batch_end(self, tuner) -> None:
        self.losses.append(tuner.state.last_loss)
        if self.steps and len(self.losses) >= self.steps:
            tuner.state.stop_training = True
            raise _Done


class _Done(Exception):
    pass


def _keras_strategy(tf):
    """MultiWorkerMirroredStrategy under TF_CONFIG; MirroredStrategy over KERAS_REPLICAS logical CPUs; or none."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    replicas = int(os.environ.get("KERAS_REPLICAS", "1"))
    if replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    return tf.distribute.get_strategy()


def build(framework: str, loss: str, width: int = 64, seed: int = 0) -> tuple:
    """(tuner class, model, loss) of ``framework``, the model from the same ``seed``-ed start on every worker."""
    if framework == "torch":
        import torch

        from finetuner.tuner.pytorch import PytorchTuner as tuner
        from finetuner.tuner.pytorch import losses

        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 32))
    elif framework == "keras":
        from finetuner.tuner.keras import KerasTuner as tuner
        from finetuner.tuner.keras import losses
        from tailor_ir.imports import import_keras, import_tensorflow

        keras, tf = import_keras(), import_tensorflow()
        strategy = _keras_strategy(tf)
        with strategy.scope():
            keras.utils.set_random_seed(seed)
            model = keras.Sequential(
                [keras.Input((64,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(32)]
            )
    else:
        from finetuner.tuner.paddle import PaddleTuner as tuner
        from finetuner.tuner.paddle import losses
        from tailor_ir.imports import import_paddle

        paddle = import_paddle()
        paddle.seed(seed)
        model = paddle.nn.Sequential(paddle.nn.Linear(64, width), paddle.nn.ReLU(), paddle.nn.Linear(width, 32))
    if loss == "TripletLoss":
        return tuner, model, losses.TripletLoss(miner=TripletMiner("all", "semihard", margin=0.2))
    return tuner, model, getattr(losses, loss)()


def fit_once(args: argparse.Namespace, loss: str, x: np.ndarray, y: np.ndarray, train: np.ndarray) -> dict:
    """One fit from the same start; on rank 0 its step losses, final weights and (full epochs) test mAP@R."""
    seed = getattr(args, "seed", 0)
    tuner_class, model, loss_object = build(args.framework, loss, getattr(args, "width", 64), seed)
    tuner = tuner_class(model, loss=loss_object, learning_rate=1e-2, device="cpu", seed=7 + seed)
    recorder = StepLosses(args.steps)
    callbacks = [recorder] + ([TrainingCheckpoint(args.ckpt, every_n_batches=1)] if args.ckpt else [])
    start = time.perf_counter()
    try:
        tuner.fit((x[train], y[train]), epochs=args.epochs, batch_size=args.batch_size,
                  num_items_per_class=getattr(args, "per_class", 4), callbacks=callbacks,
                  resume_from=args.ckpt if args.resume else None)
    except _Done:
        pass
    seconds = time.perf_counter() - start
    result = {f"{loss}.losses": np.asarray(recorder.losses), "world": tuner.world.size, "rank": tuner.world.rank,
              f"{loss}.seconds": seconds,
              f"{loss}.samples": len(recorder.losses) * args.batch_size * tuner.world.size}
    result.update({f"{loss}.w.{k}": v for k, v in tuner.get_weights().items()})
    if not args.steps:
        from finetuner.evaluation.evaluator import evaluate_embeddings

        test = ~train
        result[f"{loss}.map_at_r"] = evaluate_embeddings(tuner.embed(x[test]), y[test], metrics=["mAP@R"])["mAP@R"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--framework", default="torch", choices=("torch", "keras", "paddle"))
    parser.add_argument("--losses", default="NTXentLoss", help="comma-separated loss names, each fit in turn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="stop after this many steps (0: run every epoch)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=4, help="items per class in a global batch")
    parser.add_argument("--width", type=int, default=64, help="hidden units of the MLP")
    parser.add_argument("--seed", type=int, default=0, help="the model's initial weights and the tuner's data order")
    parser.add_argument("--ckpt", help="write a TrainingCheckpoint here after every step")
    parser.add_argument("--resume", action="store_true", help="resume from --ckpt")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    train = np.arange(len(y)) % 3 != 0
    result: dict = {}
    for loss in args.losses.split(","):
        result.update(fit_once(args, loss, x, y, train))
    if int(result["rank"]) == 0:
        np.savez(args.out, **result)
    if args.framework == "torch":
        import torch

        if torch.distributed.is_initialized():
            gc.collect()  # the DDP wrappers of the finished fits hold the gloo group: free them while Python is alive
            torch.distributed.barrier()  # rank 0 writes the file first: no rank tears gloo down under the other
            torch.distributed.destroy_process_group()
            # gloo's worker threads can still hold tensors at interpreter finalization, which then aborts
            # ("terminate called without an active exception", SIGABRT; seen once in CI, pytorch/pytorch#179291):
            # the run is over and written, so leave without finalizing
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
