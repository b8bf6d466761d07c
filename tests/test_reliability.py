"""Faults a run meets in practice, each of which once lost or mixed up work (issue 18): the engine now refuses
or recovers, and says what happened."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

import gen_jax.train as gt
from gen_jax.train import loop
from gen_jax.train.checkpoint import CheckpointCorruptError, CheckpointStore
from gen_jax.train.workdir import WorkdirLock

from conftest import smoke


def files(work):
    return {p: p.read_bytes() for p in work.rglob("*") if p.is_file() and p.name != ".lock"}


def params_of(work):
    return gt.restore_run(work)[2].params


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    work = tmp_path_factory.mktemp("straight") / "w"
    gt.run(smoke(), work)
    return params_of(work)


def test_settings_that_would_lose_work_are_errors_before_anything_is_written(tmp_path):
    for key, value, message in [("train__max_checkpoints", 0, "would delete every checkpoint"),
                                ("train__steps", -1, "train.steps=-1 is invalid"),
                                ("eval__batch_size", 0, "eval.batch_size=0 is invalid"),
                                ("train__log_every", -5, "train.log_every=-5")]:
        with pytest.raises(ValueError, match=message):
            gt.run(smoke(**{key: value}), tmp_path / key)
        assert not (tmp_path / key).exists()


def test_zero_means_never_for_log_checkpoint_and_sample_intervals(tmp_path):
    res = gt.run(smoke(train__log_every=0, train__checkpoint_every=0, train__sample_every=0), tmp_path)
    assert res["step"] == 20 and (tmp_path / "samples.png").exists() and not (tmp_path / "samples").exists()
    assert CheckpointStore(tmp_path / "checkpoints").all_steps() == [20]
    assert [r["step"] for r in gt.read_metrics(tmp_path) if "loss" in r] == [20]


def test_a_second_process_on_the_workdir_is_refused_naming_the_holder(tmp_path):
    work = tmp_path / "w"
    gt.run(smoke(), work, stop_requested=lambda step: step == 10)
    before = files(work)
    holder = WorkdirLock(work)  # what another live run holds (flock is per open file: this conflicts too)
    try:
        with pytest.raises(gt.WorkdirBusyError, match=rf"in use by another run \(.*\"pid\": {os.getpid()}"):
            gt.run(smoke(), work)
        assert files(work) == before
    finally:
        holder.release()
    assert gt.run(smoke(), work)["step"] == 20  # released: the run goes on


def _flip_a_byte_in_the_arrays(checkpoint_dir):
    state_files = [p for p in (checkpoint_dir / "state").rglob("*") if p.is_file()]
    target = max(state_files, key=lambda p: p.stat().st_size)  # the array data, not the metadata
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    target.write_bytes(bytes(raw))


def test_a_flipped_byte_is_detected_and_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, straight,
                                                                                           capsys):
    work = tmp_path / "w"
    gt.run(smoke(), work, stop_requested=lambda step: step == 13)  # checkpoints at 10 and 13
    _flip_a_byte_in_the_arrays(work / "checkpoints" / "13")
    store = CheckpointStore(work / "checkpoints")
    with pytest.raises(CheckpointCorruptError, match=r"checkpoints/13 .*(damaged|cannot be read)"):
        store.restore(gt.restore_run(work)[2], step=13)  # restore_run itself fell back to step 10
    store.close()
    assert "restored the newest intact checkpoint, step 10" in capsys.readouterr().out
    gt.run(smoke(), work)
    out = capsys.readouterr().out
    assert "checkpoint at step 13 is damaged" in out and (work / "checkpoints_damaged" / "13").is_dir()
    chex.assert_trees_all_equal(straight, params_of(work))  # replayed 10..20 exactly


def test_resume_changes_that_alter_the_state_structure_are_refused_before_writing(tmp_path):
    work = tmp_path / "w"
    gt.run(smoke(), work, stop_requested=lambda step: step == 10)
    gt.run(smoke(train__steps=30), work, stop_requested=lambda step: step == 12)  # allowed: keeps the config
    kept = work / "config.before_step_0000010.json"
    assert json.loads(kept.read_text())["train"]["steps"] == 20
    before = files(work)
    for key, value, name in [("optim__grad_clip_norm", 1.0, "optim.grad_clip_norm"),
                             ("train__ema_decay", 0.9, "train.ema_decay"), ("optim__name", "sgd", "optim.name")]:
        with pytest.raises(ValueError, match=rf"another structure .*{name}"):
            gt.run(smoke(train__steps=30, **{key: value}), work)
        assert files(work) == before  # the kept config of step 10 included
    with pytest.raises(ValueError, match=r"other train.batch_size"):
        gt.run(smoke(train__steps=30, train__batch_size=16), work)
    assert files(work) == before


def test_a_torn_metrics_line_and_a_broken_config_json(tmp_path, capsys):
    work = tmp_path / "w"
    gt.run(smoke(), work, stop_requested=lambda step: step == 10)
    with (work / "metrics.jsonl").open("a") as f:
        f.write('{"step": 11, "loss": 3.')  # the disk filled up mid-line
    assert [r["step"] for r in gt.read_metrics(work)][-1] == 10
    gt.run(smoke(), work)
    assert "dropping a torn last line" in capsys.readouterr().out
    steps = [r["step"] for r in gt.read_metrics(work) if "loss" in r]
    assert steps == [5, 10, 15, 20]
    (work / "config.json").write_text('{"seed": 0, "da')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON"):
        gt.restore_run(work)


def test_an_empty_best_directory_is_no_selection_and_reads_create_nothing(tmp_path):
    work = tmp_path / "w"
    gt.run(smoke(), work)
    assert gt.resolve_checkpoint(work, "best_if_any") == "latest"
    with pytest.raises(FileNotFoundError, match="no model selection"):
        gt.restore_run(work, checkpoint="best")
    assert not (work / "best").exists()  # a read-only command created nothing
    (work / "best").mkdir()  # what a failed evaluate or an early-stopped selection run used to leave
    assert gt.resolve_checkpoint(work, "best_if_any") == "latest"
    assert int(gt.restore_run(work, checkpoint="best_if_any")[2].step) == 20
    # an earlier kept checkpoint by its step (what evaluate.py / evaluate_metrics.py --checkpoint 10 read)
    assert gt.resolve_checkpoint(work, "10") == "10"
    early, late = (gt.restore_run(work, checkpoint=c)[2] for c in ("10", "latest"))
    assert int(early.step) == 10 and not np.array_equal(*(jax.tree.leaves(s.params)[0] for s in (early, late)))
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 7 .* keeps steps \[10, 20\]"):
        gt.restore_run(work, checkpoint="7")
    with pytest.raises(ValueError, match="or a kept checkpoint's step, got 'last'"):
        gt.resolve_checkpoint(work, "last")


def test_non_finite_at_the_first_step_names_it_and_says_no_checkpoint_exists(tmp_path):
    with pytest.raises(gt.NonFiniteError, match=r"non-finite at step [12] .*no checkpoint had been written"):
        gt.run(smoke(optim__learning_rate=1e30, train__log_every=100, train__checkpoint_every=100), tmp_path)
    assert not any((tmp_path / "checkpoints").iterdir())


def test_ctrl_c_stops_gracefully_with_a_checkpoint_and_resumes_exactly(tmp_path, straight):
    def press_ctrl_c(step):
        if step == 13:
            os.kill(os.getpid(), signal.SIGINT)  # delivered to the loop's handler, not as KeyboardInterrupt
        return False

    res = gt.run(smoke(), tmp_path, stop_requested=press_ctrl_c)
    assert res["interrupted_at_step"] == 13 and int(gt.restore_run(tmp_path)[2].step) == 13
    gt.run(smoke(), tmp_path)
    chex.assert_trees_all_equal(straight, params_of(tmp_path))


def test_sigterm_during_the_final_evaluation_stops_it_and_the_rerun_evaluates(tmp_path, monkeypatch):
    real = loop.run_evaluators

    def preempted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "run_evaluators", preempted)
    res = gt.run(smoke(), tmp_path)
    assert res["interrupted_during"] == "evaluation" and not (tmp_path / "eval.json").exists()
    monkeypatch.setattr(loop, "run_evaluators", real)
    assert gt.run(smoke(), tmp_path)["eval"]["nll"] > 0 and (tmp_path / "eval.json").exists()


def test_resuming_on_another_device_count_says_it_is_not_bit_identical(tmp_path, capsys):
    gt.run(smoke(train__num_devices=4), tmp_path, stop_requested=lambda step: step == 10)
    assert CheckpointStore(tmp_path / "checkpoints").read_data()["num_devices"] == 4
    gt.run(smoke(), tmp_path)
    assert "its checkpoint was written on 4: the run goes on, but is not bit-identical" in capsys.readouterr().out


def test_the_prepared_mnist_cache_is_keyed_by_its_source_and_a_corrupt_one_is_named(tmp_path, monkeypatch):
    from gen_jax.data import images

    a, b = tmp_path / "a" / "mnist", tmp_path / "b" / "mnist"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    cache = tmp_path / "tfds"
    cache.mkdir()
    rng = np.random.default_rng(0)
    for folder, fill in ((a, 1), (b, 2)):
        key = images.hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
        np.savez(cache / f"mnist_test_{key}.npz", image=np.full((3, 28, 28, 1), fill, np.uint8),
                 label=rng.integers(0, 10, 3).astype(np.int32))
    assert images._tfds_image_dataset("mnist", "test", a, cache).image.max() == 1
    assert images._tfds_image_dataset("mnist", "test", b, cache).image.max() == 2  # not a's arrays
    corrupt = next(cache.glob("mnist_test_*.npz"))
    corrupt.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=rf"prepared cache {corrupt} .* delete that file"):
        images._tfds_image_dataset("mnist", "test", a if corrupt.name.endswith(
            images.hashlib.sha256(str(a.resolve()).encode()).hexdigest()[:12] + ".npz") else b, cache)


def test_a_checkpoint_from_before_aux_existed_restores(tmp_path):
    import flax.struct
    import jax.numpy as jnp
    import optax

    class OldTrainState(flax.struct.PyTreeNode):  # TrainState as it was before ``aux``
        step: jnp.ndarray
        params: dict
        opt_state: object
        ema_params: object = None

    params = {"w": jnp.arange(3.0)}
    opt = optax.adam(1e-3)
    old = OldTrainState(step=jnp.asarray(7, jnp.int32), params=params, opt_state=opt.init(params))
    store = CheckpointStore(tmp_path)
    store.save(7, old, {"epoch": 0, "batch": 0})
    store.close()
    store = CheckpointStore(tmp_path, create=False)
    state, _ = store.restore(gt.create_train_state({"w": jnp.zeros(3)}, opt))
    store.close()
    assert int(state.step) == 7 and state.aux is None
    np.testing.assert_array_equal(state.params["w"], [0.0, 1.0, 2.0])


_DEEP_QUEUE = """
import sys
import jax
from gen_jax.data import BatchIterator
from gen_jax.families import build_family
from gen_jax.train import parallel
from gen_jax.train.config import load_config_file
from gen_jax.train.loop import init_state, load_data, run_keys
parallel.MAX_IN_FLIGHT = int(sys.argv[1])
c = load_config_file("configs/vae_digits.py", "smoke")
data = load_data(c, "train")
family = build_family(c, data)
step = parallel.compile_step(family.trainer.make_step(parallel.AXIS_NAME), 4)
state = parallel.replicate(init_state(c, family, data), 4)
batches = BatchIterator(data.arrays(), c.train.batch_size, seed=0, num_devices=4)
key = run_keys(0)["loop"]
for _ in range(int(sys.argv[2])):  # the caller never waits: only compile_step's own bound does
    state, metrics = step(state, next(batches), key)
print("finite", bool(jax.device_get(parallel.all_finite(state.params))))
"""


def test_a_multi_device_step_dispatched_without_waiting_does_not_deadlock_host_devices():
    # 120 steps queued without a wait deadlocked XLA:CPU's all-reduce on 4 host devices and aborted the process
    # (exit 134, measured with MAX_IN_FLIGHT = 10**9, BENCHMARKS); compile_step now waits every MAX_IN_FLIGHT.
    from conftest import CONFIGS

    proc = subprocess.run([sys.executable, "-c", _DEEP_QUEUE, "16", "300"], cwd=CONFIGS.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "finite True" in proc.stdout, proc.stderr[-2000:]


def test_cache_entries_are_built_under_a_lock_and_written_by_rename(tmp_path):
    """Two builders of one entry take turns (the second sees the first's result and builds nothing); a written
    file appears whole, with no temporary left beside it."""
    import threading
    import time

    from gen_jax.data.cache import CacheEntryError, cached_arrays, write_atomically

    entry, builds, read = tmp_path / "c" / "entry.npz", [], {}

    def build(name):
        builds.append(name)
        time.sleep(0.3)
        return {"x": np.arange(3)}

    def use(name):  # each thread opens the lock file itself: flock excludes it like another process
        read[name] = cached_arrays(entry, lambda: build(name))["x"].tolist()

    threads = [threading.Thread(target=use, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert len(builds) == 1 and read == {"a": [0, 1, 2], "b": [0, 1, 2]}
    write_atomically(tmp_path / "c" / "meta.json", "{}")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["entry.npz", "entry.npz.lock", "meta.json"]
    entry.write_bytes(b"half a file")
    with pytest.raises(CacheEntryError, match=rf"cache entry {entry} cannot be read .* delete that file"):
        cached_arrays(entry, lambda: build("c"))
    assert len(builds) == 1 and entry.read_bytes() == b"half a file"  # named, not rebuilt over


AHEAD_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])  # tests/: the suite's conftest (its XLA flags and caches) and smoke configs
from conftest import smoke
import gen_jax.train as gt
from gen_jax.train import loop
import jax, jax.numpy as jnp

outputs, unfinished = [], []
real = loop.compile_step

def slow_compile(step, *args, **kwargs):
    def slow_step(state, batch, rng):
        state, metrics = step(state, batch, rng)
        m = jax.lax.fori_loop(0, 40, lambda i, m: jnp.tanh(m @ m), jnp.full((256, 256), 0.01))
        return state, dict(metrics, slow=jnp.sum(m))
    compiled = real(slow_step, *args, **kwargs)

    def recorded(*a):
        out = compiled(*a)
        outputs.append(out[1]["slow"])
        return out
    return recorded

loop.compile_step = slow_compile

def watch(step):
    unfinished.append(sum(not o.is_ready() for o in outputs))
    return False

gt.run(smoke(train__steps=30, train__log_every=30, train__checkpoint_every=30), sys.argv[2], stop_requested=watch)
print(json.dumps(unfinished))
"""


def test_the_host_runs_at_most_two_steps_ahead_of_the_device(tmp_path):
    """JAX dispatches asynchronously: a loop that never waits between logs queues steps as far as the runtime
    allows (10 here without the bound), and a SIGTERM's checkpoint then waits for all of them. Each step here is made slow on the device (a chain of
    matrix products); whenever the host has dispatched a step, at most MAX_STEPS_AHEAD + 1 may be unfinished.
    ``import gen_jax`` runs single-device CPU programs inline (gen_jax.host_memory), where nothing is ever
    unfinished, so this runs in a process that keeps JAX's asynchronous dispatch, as GPUs and TPUs have it."""
    out = subprocess.run([sys.executable, "-c", AHEAD_SCRIPT, str(Path(__file__).parent), str(tmp_path / "run")],
                         capture_output=True, text=True, env={**os.environ, "GEN_JAX_CPU_ASYNC_DISPATCH": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    unfinished = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(unfinished) == 30
    assert 1 <= max(unfinished) <= 3, unfinished  # the host did run ahead, and no further than the bound
