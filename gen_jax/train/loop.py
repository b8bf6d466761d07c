"""The training loop: ``run(config, workdir)`` trains, checkpoints, logs, draws samples and evaluates.

Restarting ``run`` on the same workdir resumes from the latest checkpoint (parameters, optimizer state,
step and data position); because every step's key is ``fold_in(loop_key, step)``, the resumed run replays the
uninterrupted one exactly.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from gen_jax.data.images import IMAGE_DATASETS, load_image_dataset
from gen_jax.data.toy2d import TOY_DATASETS
from gen_jax.data.text import TEXT_DATASETS, load_text_dataset
from gen_jax.data.vectors import load_toy_dataset
from gen_jax.data.iterator import BatchIterator
from gen_jax.train.checkpoint import CheckpointStore
from gen_jax.train.config import validate_config
from gen_jax.train.metrics import MetricWriter, check_finite
from gen_jax.train.optim import check_optim_config, make_optimizer
from gen_jax.train.parallel import (AXIS_NAME, check_divisible, compile_step, replicate,
                                    resolve_num_devices, unreplicate)
from gen_jax.train.state import TrainState, create_train_state
from gen_jax.train.step import make_train_step
from gen_jax.train.tasks import Task, build_task
from gen_jax.viz import save_image_grid


def load_data(config: ml_collections.ConfigDict, split: str):
    """A split of ``config.data.name``: a 2-D toy (fixed samples, see :mod:`gen_jax.data.vectors`), a text
    dataset (:mod:`gen_jax.data.text`) or an image dataset."""
    if config.data.name in TOY_DATASETS:
        size = config.data.toy_num_train if split == "train" else config.data.toy_num_eval
        return load_toy_dataset(config.data.name, split, size)
    if config.data.name in TEXT_DATASETS:
        return load_text_dataset(config.data.name, split, config.data.text_file or None)
    if config.data.name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {config.data.name!r}; known: images {list(IMAGE_DATASETS)}, "
                         f"2-D toys {list(TOY_DATASETS)}, text {list(TEXT_DATASETS)}")
    return load_image_dataset(config.data.name, split, data_dir=config.data.data_dir or None,
                              tfds_dir=config.data.tfds_dir or None)


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, all split once from ``jax.random.key(seed)``: one root for the whole run."""
    return dict(zip(("init", "loop", "sample", "eval"), jax.random.split(jax.random.key(seed), 4)))


def init_state(config, task: Task, train_data, optimizer) -> TrainState:
    """The fresh state, from ``config.seed`` alone."""
    example = {k: v[:2] for k, v in train_data.arrays().items()}
    params = task.init_params(run_keys(config.seed)["init"], example)
    return create_train_state(params, optimizer, ema=config.train.ema_decay > 0)


def _write_samples(task: Task, state: TrainState, rng, config, path: Path, title: str) -> None:
    params = state.eval_params
    if task.picture is not None:
        task.picture(params, rng, path, title)
        return
    images = np.asarray(task.sample(params, rng, config.train.num_sample_images))
    save_image_grid(images, path, title=title)


class _BestParams:
    """The best-scoring state so far (lower score is better) in its own one-slot checkpoint directory, with
    the score beside it; patience counts the selection points since the best, so it survives a restart."""

    def __init__(self, directory: Path, every: int, patience: int, current_step: int):
        self._store = CheckpointStore(directory, max_to_keep=1)
        self.patience = patience
        self.step = self.score = None
        self.bad = 0
        if self._store.latest_step() is not None:
            meta = self._store.read_data()
            self.step, self.score = int(meta["step"]), float(meta["score"])
            self.bad = max(0, current_step // every - self.step // every)

    @property
    def patience_exhausted(self) -> bool:
        return bool(self.patience) and self.bad >= self.patience

    def update(self, step: int, score: float, state: TrainState) -> None:
        if self.score is None or score < self.score:
            self.step, self.score, self.bad = step, score, 0
            self._store.save(step, state, {"step": step, "score": score})
        else:
            self.bad += 1

    def restore(self, target: TrainState) -> TrainState:
        self._store.wait()
        return self._store.restore(target)[0]

    def close(self) -> None:
        self._store.close()


# What a checkpoint is bound to: resuming under other values would load its parameters into another model,
# or go on training them on another training set.
RESUME_BOUND_KEYS = ("seed", "data.name", "data.toy_num_train", "data.text_file")
RESUME_BOUND_PREFIXES = ("model.",)


def config_changes(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """``(dotted key, old, new)`` for every setting present in both config dicts whose value differs. Keys
    only one side has are left out: a config written before a key existed still matches its defaults."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(old), flat(new)
    return [(k, a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]


def _check_resume_config(workdir: Path, config: ml_collections.ConfigDict, step: int) -> None:
    """Resuming ``workdir`` at ``step`` under ``config``: raises if a setting the checkpoint is bound to
    changed (naming it, before anything is written); other changes (more steps, another schedule) are
    allowed, printed, and the previous ``config.json`` is kept as ``config.before_step_<step>.json``."""
    path = workdir / "config.json"
    if not path.exists():
        return
    previous = path.read_text()
    changes = config_changes(json.loads(previous), json.loads(config.to_json_best_effort()))
    if not changes:
        return
    listed = "; ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in changes)
    bound = [k for k, _, _ in changes if k in RESUME_BOUND_KEYS or k.startswith(RESUME_BOUND_PREFIXES)]
    if bound:
        raise ValueError(f"{workdir} holds a checkpoint at step {step} of a run with other {', '.join(bound)} "
                         f"({listed}); resume it with its own settings, or train in a new workdir")
    kept = workdir / f"config.before_step_{step:07d}.json"
    kept.write_text(previous)
    print(f"resuming {workdir} at step {step} with changed settings ({listed}); the previous config is kept "
          f"in {kept.name}", flush=True)


def run(config: ml_collections.ConfigDict, workdir: str | Path, *,
        stop_requested: Callable[[int], bool] | None = None) -> dict:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints) and returns the final metrics.

    Args:
      config: a config built on :func:`gen_jax.train.config.default_config`.
      workdir: where checkpoints, ``metrics.jsonl``, TensorBoard events and PNGs go.
      stop_requested: called with the step after each step; ``True`` checkpoints and returns early (as a
        SIGTERM does: preemption-safe).
    Returns:
      dict of the last logged training metrics and, if training finished, the evaluation metrics; after a
      stop request or SIGTERM, ``interrupted_at_step`` instead of evaluation metrics.
    """
    validate_config(config)
    check_optim_config(config.optim)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train_data = load_data(config, "train")
    eval_data = load_data(config, config.data.eval_split)
    if config.eval.num_examples:
        eval_data = eval_data.take(config.eval.num_examples)
    num_devices = resolve_num_devices(config.train.num_devices)
    check_divisible(config.train.batch_size, num_devices)
    select_every = config.eval.select_every
    select_data = None
    if select_every:
        select_data = load_data(config, config.eval.select_split)
        if config.eval.select_num_examples:
            select_data = select_data.take(config.eval.select_num_examples)

    task = build_task(config, train_data)
    if select_every and task.select_score is None:
        raise ValueError(f"eval.select_every={select_every} but model.family {config.model.family!r} has no "
                         "selection score; set eval.select_every=0")
    optimizer = make_optimizer(config.optim, config.train.steps)
    state = init_state(config, task, train_data, optimizer)
    keys = run_keys(config.seed)
    batches = BatchIterator(train_data.arrays(), config.train.batch_size, seed=config.seed,
                            num_devices=num_devices)
    checkpoints = CheckpointStore(workdir / "checkpoints", max_to_keep=config.train.max_checkpoints)
    if checkpoints.latest_step() is not None:
        try:
            _check_resume_config(workdir, config, checkpoints.latest_step())
        except ValueError:
            checkpoints.close()
            raise
        state, position = checkpoints.restore(state)
        batches.set_state(position)
    start = int(state.step)
    best = _BestParams(workdir / "best", select_every, config.eval.select_patience, start) if select_every else None
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

    ema = config.train.ema_decay or None
    if task.make_step is not None:
        per_device = task.make_step(optimizer, ema, AXIS_NAME if num_devices > 1 else None)
    else:
        per_device = make_train_step(task.loss_fn, optimizer, ema_decay=ema,
                                     axis_name=AXIS_NAME if num_devices > 1 else None)
    step_fn = compile_step(per_device, num_devices)

    terminated = []
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
    writer = MetricWriter(workdir, resume_step=start)
    cfg = config.train
    last: dict = {}
    try:
        device_state = replicate(state, num_devices)
        pbar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not cfg.progress_bar,
                    dynamic_ncols=True)
        t0, steps_since = time.perf_counter(), 0
        for step in pbar:
            if best is not None and best.patience_exhausted:
                break
            device_state, metrics = step_fn(device_state, next(batches), keys["loop"])
            done = step + 1
            steps_since += 1
            stop = bool(terminated) or (stop_requested is not None and stop_requested(done))
            checkpoint_now = done % cfg.checkpoint_every == 0 or done == cfg.steps or stop
            if done % cfg.log_every == 0 or checkpoint_now:
                host = {k: float(v) for k, v in jax.device_get(unreplicate(metrics, num_devices)).items()}
                check_finite(done, host)  # before any checkpoint of this step is written
                elapsed = time.perf_counter() - t0
                host["steps_per_sec"] = steps_since / elapsed
                t0, steps_since = time.perf_counter(), 0
                writer.write(done, host)
                pbar.set_postfix(loss=f"{host['loss']:.3f}", steps_s=f"{host['steps_per_sec']:.1f}")
                last = host
            if checkpoint_now:
                checkpoints.save(done, unreplicate(device_state, num_devices), batches.get_state())
            if done % cfg.sample_every == 0:
                _write_samples(task, unreplicate(device_state, num_devices), jax.random.fold_in(keys["sample"], done),
                               config, workdir / "samples" / f"step_{done:07d}.png", f"step {done}")
            if best is not None and (done % select_every == 0 or done == cfg.steps):
                host_state = unreplicate(device_state, num_devices)
                score = float(task.select_score(host_state.eval_params, select_data,
                                                jax.random.fold_in(keys["eval"], done)))
                check_finite(done, {f"select/{config.eval.select_split}": score})
                best.update(done, score, host_state)
                writer.write(done, {f"select/{config.eval.select_split}": score, "select/best": best.score,
                                    "select/best_step": best.step})
                if best.patience_exhausted and not checkpoint_now:  # early stop: a restart stops too
                    checkpoints.save(done, host_state, batches.get_state())
            if stop:
                return {**last, "interrupted_at_step": done}
        state = unreplicate(device_state, num_devices)
        results = {}
        if best is not None and best.step is not None:
            state = best.restore(state)
            results.update(selected_step=best.step, select_score=best.score)
        results.update(task.evaluate(state.eval_params, eval_data, keys["eval"]))
        results["step"] = int(state.step)
        writer.write(int(state.step), {f"eval/{k}": v for k, v in results.items() if k != "step"})
        (workdir / "eval.json").write_text(json.dumps(results, indent=2))
        _write_samples(task, state, keys["sample"], config, workdir / "samples.png",
                       f"{config.model.family} on {config.data.name}, step {int(state.step)}")
        return {**last, **results}
    finally:
        writer.close()
        checkpoints.close()
        if best is not None:
            best.close()
        signal.signal(signal.SIGTERM, previous_handler)


CHECKPOINT_CHOICES = ("latest", "best", "best_if_any")


def resolve_checkpoint(workdir: str | Path, checkpoint: str) -> str:
    """``latest`` or ``best``: ``best_if_any`` is ``best`` when the run made a model-selection pick."""
    if checkpoint not in CHECKPOINT_CHOICES:
        raise ValueError(f"checkpoint must be one of {CHECKPOINT_CHOICES}, got {checkpoint!r}")
    if checkpoint == "best_if_any":
        return "best" if (Path(workdir) / "best").is_dir() else "latest"
    return checkpoint


def restore_run(workdir: str | Path, split: str = "train", checkpoint: str = "latest"):
    """Rebuilds ``(config, task, state, data)`` of a trained workdir from its config and a checkpoint:
    ``latest`` (the end of training), ``best`` (the model-selection pick, see ``eval.select_every``) or
    ``best_if_any``; ``data`` is ``split`` of the run's dataset. The task is built from the training split
    whatever ``split`` is, so the restored model is the trained function."""
    workdir = Path(workdir)
    checkpoint = resolve_checkpoint(workdir, checkpoint)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path} does not exist: is {workdir} a gen_jax training workdir?")
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    # The task is built from the training split, as in `run`: some models take constants from it (a flow's
    # input standardisation), so building them from another split would give another function.
    train_data = load_data(config, "train")
    data = train_data if split == "train" else load_data(config, split)
    task = build_task(config, train_data)
    optimizer = make_optimizer(config.optim, config.train.steps)
    state = init_state(config, task, train_data, optimizer)
    directory = workdir / ("checkpoints" if checkpoint == "latest" else "best")
    checkpoints = CheckpointStore(directory, max_to_keep=config.train.max_checkpoints)
    if checkpoints.latest_step() is None:
        hint = " (the run had no model selection: eval.select_every=0)" if checkpoint == "best" else ""
        checkpoints.close()
        raise FileNotFoundError(f"no checkpoint in {directory}{hint}")
    state, _ = checkpoints.restore(state)
    checkpoints.close()
    return config, task, state, data
