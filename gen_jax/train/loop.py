"""The training loop: ``run(config, workdir)`` trains, checkpoints, logs, draws samples and evaluates.

Restarting ``run`` on the same workdir resumes from the latest intact checkpoint (parameters, optimizer
state, auxiliary state, step and data position); because every step's key is ``fold_in(loop_key, step)``, the
resumed run replays the uninterrupted one exactly. The loop never names a family: it reaches them through
the registry (:mod:`gen_jax.families`) and their common interface.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from gen_jax.data.clusters import relabel_by_clusters
from gen_jax.data.images import IMAGE_DATASETS, load_image_dataset
from gen_jax.data.iterator import BatchIterator
from gen_jax.data.text import TEXT_DATASETS, load_text_dataset
from gen_jax.data.toy2d import TOY_DATASETS
from gen_jax.data.vectors import load_toy_dataset
# The registry as a module, read at call time: the families import gen_jax.train (state, step, optimizers), so
# `import gen_jax.families` before gen_jax.train reaches this line while the registry is half built.
from gen_jax import families as family_registry
from gen_jax.train.checkpoint import CheckpointStore, has_checkpoint
from gen_jax.train.config import upgrade_config_dict, validate_config
from gen_jax.train.distributed import allgather_text, any_process, is_primary
from gen_jax.train.evaluators import (build_evaluators, log_likelihood_options, run_evaluators,
                                      split_log_likelihood)
from gen_jax.train.metrics import MetricWriter, check_finite
from gen_jax.train.optim import check_optim_config
from gen_jax.train.parallel import (AXIS_NAME, check_divisible, check_parallelism, check_replicas_agree,
                                    compile_step, cpu_compiler_options, replicate, resolve_num_devices, unreplicate)
from gen_jax.train.state import TrainState
from gen_jax.train.workdir import WorkdirLock, keep_file_name, write_text_atomic
from gen_jax.viz import save_image_grid


def load_data(config: ml_collections.ConfigDict, split: str):
    """A split of ``config.data.name``: a 2-D toy (fixed samples, see :mod:`gen_jax.data.vectors`), a text
    dataset (:mod:`gen_jax.data.text`) or an image dataset."""
    k = config.data.get("clusters", 0)
    if k < 0 or (k and config.data.name not in IMAGE_DATASETS):
        raise ValueError(f"data.clusters={k} is invalid: it must be >= 0, and > 0 (cluster labels) only for an "
                         f"image dataset, not {config.data.name!r}")
    if config.data.name in TOY_DATASETS:
        size = config.data.toy_num_train if split == "train" else config.data.toy_num_eval
        return load_toy_dataset(config.data.name, split, size)
    if config.data.name in TEXT_DATASETS:
        return load_text_dataset(config.data.name, split, config.data.text_file or None)
    if config.data.name not in IMAGE_DATASETS:
        raise ValueError(f"unknown dataset {config.data.name!r}; known: images {list(IMAGE_DATASETS)}, "
                         f"2-D toys {list(TOY_DATASETS)}, text {list(TEXT_DATASETS)}")
    load = functools.partial(load_image_dataset, config.data.name, data_dir=config.data.data_dir or None,
                             tfds_dir=config.data.tfds_dir or None)
    data = load(split)
    if k:  # k-means clusters of the training images as the labels (gen_jax.data.clusters)
        data = relabel_by_clusters(data, data if split == "train" else load("train"), k, config.seed)
    return data


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, all split once from ``jax.random.key(seed)``: one root for the whole run."""
    return dict(zip(("init", "loop", "sample", "eval"), jax.random.split(jax.random.key(seed), 4)))


def init_state(config, family: family_registry.Family, train_data) -> TrainState:
    """The fresh state, from ``config.seed`` alone. Jitted: run op by op, a DCGAN's initialisers compiled 134
    small programs (7.4 s of a 12 s smoke run)."""
    example = {k: v[:2] for k, v in train_data.arrays().items()}
    return jax.jit(family.trainer.init_state)(run_keys(config.seed)["init"], example)


def check_run_config(config: ml_collections.ConfigDict) -> None:
    """Settings that would fail (or silently do nothing useful) only after work had been done: errors now."""
    t, e = config.train, config.eval
    rules = [("train.steps", t.steps >= 1, ">= 1"), ("train.batch_size", t.batch_size >= 1, ">= 1"),
             ("train.max_checkpoints", t.max_checkpoints >= 1,
              ">= 1 (0 would delete every checkpoint as soon as it is written)"),
             ("train.log_every", t.log_every >= 0, ">= 0 (0 = only at checkpoints)"),
             ("train.checkpoint_every", t.checkpoint_every >= 0, ">= 0 (0 = only at the end)"),
             ("train.sample_every", t.sample_every >= 0, ">= 0 (0 = never during training)"),
             ("train.num_sample_images", t.num_sample_images >= 1, ">= 1"),
             ("train.ema_decay", 0.0 <= t.ema_decay < 1.0, "in [0, 1)"),
             ("eval.batch_size", e.batch_size >= 1, ">= 1"), ("eval.num_examples", e.num_examples >= 0, ">= 0"),
             ("eval.select_every", e.select_every >= 0, ">= 0"),
             ("eval.select_patience", e.select_patience >= 0, ">= 0"),
             ("eval.select_importance_samples", e.select_importance_samples >= 1, ">= 1")]
    for name, ok, what in rules:
        if not ok:
            section, key = name.split(".")
            raise ValueError(f"{name}={config[section][key]!r} is invalid: it must be {what}")
    blocks = [config.optim] if "name" in config.optim else [config.optim[p] for p in config.optim.keys()]
    for block in blocks:
        check_optim_config(block)


def _every(done: int, every: int) -> bool:
    return bool(every) and done % every == 0


def _write_samples(family: family_registry.Family, state: TrainState, rng, config, path: Path, title: str) -> None:
    params = state.eval_params
    if family.picture is not None:
        family.picture(params, rng, path, title)
        return
    if family.sample is None or not family.num_levels:
        return  # neither a picture of its own nor images to put in a grid
    images = np.asarray(family.sample(params, rng, config.train.num_sample_images), np.float32)
    save_image_grid(images / (family.num_levels - 1), path, title=title)


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
# go on training them on another training set, or (batch size) replay the data from a position counted in
# batches of another size.
RESUME_BOUND_KEYS = ("seed", "data.name", "data.toy_num_train", "data.text_file", "train.batch_size")
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


def _describe(changes: list[tuple[str, object, object]]) -> str:
    return "; ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in changes)


def _read_config_json(path: Path) -> dict:
    try:
        return upgrade_config_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it from config.before_step_*.json or "
                         f"delete it to resume under the current config") from e


def _check_resume(workdir: Path, config: ml_collections.ConfigDict, step: int, target: TrainState,
                  train_data) -> tuple[list, str | None]:
    """Checks resuming ``workdir`` (latest checkpoint ``step``) under ``config`` and writes nothing. Raises if
    a setting the checkpoint is bound to changed, or if a change alters the train state's structure (an
    optimizer with(out) gradient clipping, another optimizer, an EMA switched on or off), naming it. Returns
    the allowed changes and the previous config's text (kept once the restore succeeds)."""
    path = workdir / "config.json"
    if not path.exists():
        return [], None
    previous = _read_config_json(path)
    changes = config_changes(previous, json.loads(config.to_json_best_effort()))
    if not changes:
        return [], None
    listed = _describe(changes)
    bound = [k for k, _, _ in changes if k in RESUME_BOUND_KEYS or k.startswith(RESUME_BOUND_PREFIXES)]
    if bound:
        raise ValueError(f"{workdir} holds a checkpoint at step {step} of a run with other {', '.join(bound)} "
                         f"({listed}); resume it with its own settings, or train in a new workdir")
    old_config = ml_collections.ConfigDict(previous)
    old_family = family_registry.build_family(old_config, train_data)
    old_state = jax.eval_shape(lambda: init_state(old_config, old_family, train_data))
    new_state = jax.eval_shape(lambda: target)
    same = (jax.tree.structure(old_state) == jax.tree.structure(new_state)
            and all(a.shape == b.shape and a.dtype == b.dtype
                    for a, b in zip(jax.tree.leaves(old_state), jax.tree.leaves(new_state))))
    if not same:
        raise ValueError(f"{workdir} holds a checkpoint at step {step} whose train state has another structure "
                         f"than these settings give ({listed}): the optimizer state or EMA cannot be carried "
                         f"over; resume with the checkpoint's settings, or train in a new workdir")
    return changes, path.read_text()


def _move_damaged(workdir: Path, damaged: list) -> None:
    """Moves damaged checkpoints out of the store (kept, not deleted) so new ones can take their steps."""
    target = workdir / "checkpoints_damaged"
    target.mkdir(exist_ok=True)
    for step, error in damaged:
        dest = keep_file_name(target / str(step))
        os.replace(workdir / "checkpoints" / str(step), dest)
        print(f"checkpoint at step {step} is damaged ({error}); moved to {dest}, resuming from the newest intact "
              f"one", flush=True)


# In a multi-process job a stop (a signal, ``stop_requested``) is agreed every SYNC_EVERY steps, so that every
# process checkpoints the same step.
SYNC_EVERY = 16

# The host may dispatch at most this many steps ahead of the device. JAX dispatches asynchronously and nothing
# else in the loop waits between log steps, so the host used to queue steps as far as the runtime allowed (10 on
# XLA:CPU here, tests/test_reliability.py): a SIGTERM (a preemption's grace period) then waited for all of them
# before its checkpoint: over 40 s for a diffusion run at 3-4 s per step. Two keep the device fed. (The
# multi-device step of compile_step also waits every parallel.MAX_IN_FLIGHT calls, against a deadlock, for
# callers other than this loop; here this tighter bound makes that wait a no-op.)
MAX_STEPS_AHEAD = 2


class _NoWriter:
    """The metric writer of processes other than 0."""

    def write(self, step, values):
        pass

    def close(self):
        pass


class _Preempted(Exception):
    """SIGTERM during the final evaluation: stop now (training is checkpointed), evaluate on the restart."""


def run(config: ml_collections.ConfigDict, workdir: str | Path, *,
        stop_requested: Callable[[int], bool] | None = None) -> dict:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints) and returns the results.

    The workdir is locked for the whole run (a second process on it is refused, naming the holder); every
    setting is checked before anything is written.

    Args:
      config: a config built on :func:`gen_jax.train.config.default_config`.
      workdir: where checkpoints, ``metrics.jsonl``, TensorBoard events and PNGs go.
      stop_requested: called with the step after each step; ``True`` checkpoints and returns early (as a
        SIGTERM or a first Ctrl-C does: preemption-safe; a second Ctrl-C interrupts at once).
    Returns:
      ``{"train": last logged training metrics, "eval": evaluation metrics, "step": final step}``; after a
      stop, ``interrupted_at_step`` (and ``interrupted_during="evaluation"`` if it came then) instead of
      ``eval``.
    """
    workdir = Path(workdir)
    lock = problem = None
    try:
        validate_config(config)
        check_run_config(config)
        if is_primary():  # one lock per job: process 0 holds it for all
            if workdir.exists() and not workdir.is_dir():
                raise NotADirectoryError(f"workdir {workdir} exists and is not a directory")
            workdir.mkdir(parents=True, exist_ok=True)
            lock = WorkdirLock(workdir)
    except Exception as e:
        if jax.process_count() == 1:
            raise
        problem = e
    try:
        if jax.process_count() > 1:
            _agree_across_processes(config, problem)
        return _run_locked(config, workdir, stop_requested)
    finally:
        if lock is not None:
            lock.release()


class ProcessesDisagreeError(RuntimeError):
    """The processes of a multi-process job were started with different configs, or one of them failed to
    start."""


def _agree_across_processes(config: ml_collections.ConfigDict, problem: Exception | None) -> None:
    """Every process learns every process's start-up error and config before any work: one failing process
    stops all (instead of leaving the others waiting in a collective), and configs that differ are an error
    naming the settings."""
    mine = json.dumps({"config": json.loads(config.to_json_best_effort()),
                       "problem": f"{type(problem).__name__}: {problem}" if problem else None})
    everyone = [json.loads(t) for t in allgather_text(mine)]
    failed = [(i, r["problem"]) for i, r in enumerate(everyone) if r["problem"]]
    if failed:
        raise ProcessesDisagreeError("; ".join(f"process {i} failed to start: {why}" for i, why in failed)) \
            from problem
    for i, r in enumerate(everyone[1:], start=1):
        changes = config_changes(everyone[0]["config"], r["config"])
        if changes:
            raise ProcessesDisagreeError(f"the processes of this job disagree on the config: process {i}'s differs "
                                         f"from process 0's in {_describe(changes)} (process 0's value -> process "
                                         f"{i}'s); start every process with the same config and overrides")


def _run_locked(config, workdir: Path, stop_requested) -> dict:
    train_data = load_data(config, "train")
    eval_data = load_data(config, config.data.eval_split)
    if config.eval.num_examples:
        eval_data = eval_data.take(config.eval.num_examples)
    parallelism = config.train.get("parallelism", "pmap")  # workdirs from before the setting ran pmap
    check_parallelism(parallelism)
    num_devices = resolve_num_devices(config.train.num_devices, parallelism)
    check_divisible(config.train.batch_size, num_devices)
    select_every = config.eval.select_every
    primary = is_primary()
    if jax.process_count() > 1 and select_every:
        raise ValueError("eval.select_every is not supported in a multi-process job yet; set eval.select_every=0")
    select_data = None
    if select_every:
        select_data = load_data(config, config.eval.select_split)
        if config.eval.select_num_examples:
            select_data = select_data.take(config.eval.select_num_examples)

    family = family_registry.build_family(config, train_data)
    evaluators = build_evaluators(config, family)
    select_options = {}
    if select_every:
        if family.log_prob is None:
            raise ValueError(f"eval.select_every={select_every} but model.family {family.name!r} has no "
                             "log-likelihood to select by; set eval.select_every=0")
        k = config.eval.select_importance_samples
        select_options = log_likelihood_options(family, k if k > 1 else 0)
    state = init_state(config, family, train_data)
    keys = run_keys(config.seed)
    batches = BatchIterator(train_data.arrays(), config.train.batch_size, seed=config.seed,
                            num_devices=num_devices, process_index=jax.process_index(),
                            process_count=jax.process_count())
    checkpoints = CheckpointStore(workdir / "checkpoints", max_to_keep=config.train.max_checkpoints)
    best = writer = None
    handlers = {}
    try:
        last_checkpoint = None
        if checkpoints.latest_step() is not None:
            changes, previous = _check_resume(workdir, config, checkpoints.latest_step(), state, train_data)
            state, position, last_checkpoint, damaged = checkpoints.restore_latest_intact(state)
            if damaged:
                checkpoints.close()
                if primary:
                    _move_damaged(workdir, damaged)
                checkpoints = CheckpointStore(workdir / "checkpoints", max_to_keep=config.train.max_checkpoints)
            batches.set_state(position)
            if position.get("num_devices", num_devices) != num_devices and primary:
                print(f"resuming {workdir} on {num_devices} device(s); its checkpoint was written on "
                      f"{position['num_devices']}: the run goes on, but is not bit-identical to one that stayed "
                      f"on {position['num_devices']} (reductions group differently)", flush=True)
            if changes and primary:
                kept = keep_file_name(workdir / f"config.before_step_{last_checkpoint:07d}.json")
                write_text_atomic(kept, previous)
                print(f"resuming {workdir} at step {last_checkpoint} with changed settings ({_describe(changes)}); the "
                      f"previous config is kept in {kept.name}", flush=True)
        start = int(state.step)
        if select_every:
            best = _BestParams(workdir / "best", select_every, config.eval.select_patience, start)
        if primary:
            write_text_atomic(workdir / "config.json", config.to_json_best_effort(indent=2))

        def position():
            return {**batches.get_state(), "num_devices": num_devices}

        phase = {"now": "training"}
        stops: list[int] = []

        def on_signal(signum, frame):
            if phase["now"] == "evaluation" and signum == signal.SIGTERM:
                raise _Preempted()
            if signum == signal.SIGINT and (stops or phase["now"] == "evaluation"):
                raise KeyboardInterrupt  # a second Ctrl-C: now
            stops.append(signum)

        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        writer = MetricWriter(workdir, resume_step=start) if primary else _NoWriter()
        cfg = config.train
        last: dict = {}
        trainer = family.trainer
        if trainer.fit is not None:
            if start == 0:
                t0 = time.perf_counter()
                state, metrics = trainer.fit(state, train_data.arrays(), keys["loop"])
                state = state.replace(step=jnp.ones((), jnp.int32))
                last = {k: float(v) for k, v in jax.device_get(metrics).items()}
                check_finite(1, last, last_checkpoint=None)
                last["fit_seconds"] = time.perf_counter() - t0
                writer.write(1, last)
                checkpoints.save(1, state, position())
        else:
            step_fn = compile_step(trainer.make_step(AXIS_NAME if num_devices > 1 else None), num_devices,
                                   guard=True, parallelism=parallelism,
                                   compiler_options=cpu_compiler_options(cfg.cpu_ynn_fusion))
            device_state = replicate(state, num_devices, parallelism)
            first_bad = replicate(jnp.array(-1, jnp.int32), num_devices, parallelism)
            pbar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps,
                        disable=not cfg.progress_bar or not primary,
                        dynamic_ncols=True)
            t0, steps_since = time.perf_counter(), 0
            pending = False
            in_flight = collections.deque()
            for step in pbar:
                if best is not None and best.patience_exhausted:
                    break
                device_state, metrics, first_bad = step_fn(device_state, next(batches), keys["loop"], first_bad)
                in_flight.append(metrics)
                if len(in_flight) > MAX_STEPS_AHEAD:
                    jax.block_until_ready(in_flight.popleft())
                done = step + 1
                steps_since += 1
                requested = stop_requested is not None and stop_requested(done)
                stop = requested or bool(stops)
                if jax.process_count() > 1:  # every process stops at the same step, at a sync point
                    pending = pending or stop
                    stop = (done % SYNC_EVERY == 0 or done == cfg.steps) and any_process(pending)
                checkpoint_now = _every(done, cfg.checkpoint_every) or done == cfg.steps or stop
                selecting = best is not None and (done % select_every == 0 or done == cfg.steps)
                # one host copy of the state per step, however many of checkpoint / sample / select need it
                host_state = functools.cache(lambda: unreplicate(device_state, num_devices, parallelism))
                if _every(done, cfg.log_every) or checkpoint_now or selecting:
                    host = {k: float(v) for k, v in
                            jax.device_get(unreplicate(metrics, num_devices, parallelism)).items()}
                    bad = int(unreplicate(first_bad, num_devices, parallelism))
                    # before any checkpoint of this step is written
                    check_finite(done, host, first_bad_step=bad if bad >= 0 else None,
                                 last_checkpoint=last_checkpoint)
                    elapsed = time.perf_counter() - t0
                    host["steps_per_sec"] = steps_since / elapsed
                    t0, steps_since = time.perf_counter(), 0
                    writer.write(done, host)
                    if "loss" in host:
                        pbar.set_postfix(loss=f"{host['loss']:.3f}", steps_s=f"{host['steps_per_sec']:.1f}")
                    last = host
                if checkpoint_now:
                    check_replicas_agree(device_state.aux, num_devices, "state.aux", parallelism)
                    checkpoints.save(done, host_state(), position())
                    last_checkpoint = done
                if _every(done, cfg.sample_every) and primary:
                    _write_samples(family, host_state(),
                                   jax.random.fold_in(keys["sample"], done), config,
                                   workdir / "samples" / f"step_{done:07d}.png", f"step {done}")
                if selecting:
                    score = split_log_likelihood(family, host_state().eval_params, select_data,
                                                 jax.random.fold_in(keys["eval"], done),
                                                 batch_size=config.eval.batch_size, **select_options)["nll"]
                    check_finite(done, {f"select/{config.eval.select_split}": score},
                                 last_checkpoint=last_checkpoint)
                    best.update(done, score, host_state())
                    writer.write(done, {f"select/{config.eval.select_split}": score, "select/best": best.score,
                                        "select/best_step": best.step})
                    if best.patience_exhausted and not checkpoint_now:  # early stop: a restart stops too
                        checkpoints.save(done, host_state(), position())
                        last_checkpoint = done
                if stop:
                    return {"train": last, "interrupted_at_step": done}
            state = unreplicate(device_state, num_devices, parallelism)

        phase["now"] = "evaluation"
        if not primary:
            return {"train": last, "step": int(state.step), "evaluated_by": "process 0"}
        try:
            results = {}
            if best is not None and best.step is not None:
                state = best.restore(state)
                results.update(selected_step=best.step, select_score=best.score)
            results.update(run_evaluators(evaluators, family, state.eval_params, eval_data, keys["eval"]))
            results["step"] = int(state.step)
            writer.write(int(state.step), {f"eval/{k}": v for k, v in results.items()
                                           if k != "step" and isinstance(v, (int, float))})
            write_text_atomic(workdir / "eval.json", json.dumps(results, indent=2))
            _write_samples(family, state, keys["sample"], config, workdir / "samples.png",
                           f"{config.model.family} on {config.data.name}, step {int(state.step)}")
        except _Preempted:
            print(f"SIGTERM during the final evaluation: stopped; training is checkpointed at step "
                  f"{int(state.step)}, run the same command to evaluate", flush=True)
            return {"train": last, "interrupted_at_step": int(state.step), "interrupted_during": "evaluation"}
        return {"train": last, "eval": results, "step": int(state.step)}
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        if writer is not None:
            writer.close()
        checkpoints.close()
        if best is not None:
            best.close()


CHECKPOINT_CHOICES = ("latest", "best", "best_if_any")


def resolve_checkpoint(workdir: str | Path, checkpoint: str) -> str:
    """``latest`` or ``best``: ``best_if_any`` is ``best`` when the run kept a model-selection pick (an empty
    ``best/``, left by a run stopped before its first selection, does not count). A step number (``"4000"``)
    names one of the run's kept checkpoints and is returned as it is."""
    if str(checkpoint).isdigit():
        return str(int(checkpoint))
    if checkpoint not in CHECKPOINT_CHOICES:
        raise ValueError(f"checkpoint must be one of {CHECKPOINT_CHOICES} or a kept checkpoint's step, "
                         f"got {checkpoint!r}")
    if checkpoint == "best_if_any":
        return "best" if has_checkpoint(Path(workdir) / "best") else "latest"
    return checkpoint


def checkpoint_suffix(checkpoint: str) -> str:
    """``_step<N>`` for a checkpoint named by its step (outputs scored at an earlier step go beside the run's
    own), else ``""``."""
    return f"_step{int(checkpoint)}" if str(checkpoint).isdigit() else ""


def restore_run(workdir: str | Path, split: str = "train", checkpoint: str = "latest"):
    """Rebuilds ``(config, family, state, data)`` of a trained workdir from its config and a checkpoint:
    ``latest`` (the end of training), ``best`` (the model-selection pick, see ``eval.select_every``),
    ``best_if_any``, or a step of ``checkpoints/`` (``"4000"``: an earlier point of the run, as long as
    ``train.max_checkpoints`` kept it); ``data`` is ``split`` of the run's dataset. Read-only: it creates and
    changes nothing (a damaged newest checkpoint is reported and the newest intact one restored; a damaged
    named step is an error).

    The family is built from the training split whatever ``split`` is, as in :func:`run`: some models take
    constants from it (an input standardisation), so building them from another split would give another
    function."""
    workdir = Path(workdir)
    checkpoint = resolve_checkpoint(workdir, checkpoint)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path} does not exist: is {workdir} a gen_jax training workdir?")
    config = ml_collections.ConfigDict(_read_config_json(config_path))
    train_data = load_data(config, "train")
    data = train_data if split == "train" else load_data(config, split)
    family = family_registry.build_family(config, train_data)
    state = init_state(config, family, train_data)
    directory = workdir / ("best" if checkpoint == "best" else "checkpoints")
    if not has_checkpoint(directory):
        hint = " (the run had no model selection, or stopped before its first: eval.select_every)" \
            if checkpoint == "best" else ""
        raise FileNotFoundError(f"no checkpoint in {directory}{hint}")
    store = CheckpointStore(directory, create=False)
    try:
        if checkpoint.isdigit():
            step, damaged = int(checkpoint), []
            if step not in store.all_steps():
                raise FileNotFoundError(f"no checkpoint of step {step} in {directory}; it keeps steps "
                                        f"{store.all_steps()} (train.max_checkpoints)")
            state = store.restore(state, step)[0]
        else:
            state, _, step, damaged = store.restore_latest_intact(state)
    finally:
        store.close()
    for bad_step, error in damaged:
        print(f"warning: {error}; restored the newest intact checkpoint, step {step}", flush=True)
    return config, family, state, data
