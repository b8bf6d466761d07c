"""Two processes on localhost, two CPU devices each, JAX's own runtime (``jax.distributed``, gloo collectives),
against one process with four devices (issue 17). Each process is ``experiments/train.py`` as a user starts it."""

import os
import signal
import socket
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

import gen_jax.train as gt
from gen_jax.data import BatchIterator
from gen_jax.train.checkpoint import CheckpointStore

from conftest import CONFIGS, smoke

ROOT = CONFIGS.parent
SHARDED = ["--config.train.parallelism=sharded", "--config.train.num_devices=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(workdir, *args, num_processes=2, port=None, extra=None, timeout_s=30, ids=None):
    """``num_processes`` processes of ``experiments/train.py`` on ``vae_digits:smoke``, 2 host devices each
    (only those in ``ids`` if given); ``extra[i]`` are process ``i``'s own extra flags."""
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=4", "--xla_force_host_platform_device_count=2"))
    port = port or free_port()
    return [subprocess.Popen(
        [sys.executable, str(ROOT / "experiments" / "train.py"), "--config", str(CONFIGS / "vae_digits.py:smoke"),
         "--workdir", str(workdir), f"--coordinator_address=localhost:{port}", f"--num_processes={num_processes}",
         f"--process_id={i}", f"--coordinator_timeout={timeout_s}", *SHARDED, *args, *(extra or {}).get(i, ())],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in (range(num_processes) if ids is None else ids)]


def finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [p.returncode for p in procs], outs


def leaves(work):
    state = gt.restore_run(work)[2]
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.opt_state))]


def test_each_process_feeds_its_own_rows_of_the_global_batch():
    arrays = {"x": np.arange(40)}
    whole = BatchIterator(arrays, 8, seed=3, num_devices=4)
    parts = [BatchIterator(arrays, 8, seed=3, num_devices=4, process_index=p, process_count=2) for p in (0, 1)]
    seen = []
    for _ in range(5):  # one epoch
        b = next(whole)["x"]
        mine = [next(it)["x"] for it in parts]
        assert [m.shape for m in mine] == [(2, 2), (2, 2)]
        np.testing.assert_array_equal(np.concatenate(mine), b)  # process p = devices 2p, 2p + 1
        seen.extend(np.concatenate(mine).ravel())
    assert sorted(seen) == list(range(40))  # disjoint, every example once per epoch
    assert parts[0].get_state() == parts[1].get_state() == whole.get_state()
    with pytest.raises(ValueError, match="process 0 of 3 cannot take an equal share of 4 devices"):
        BatchIterator(arrays, 8, num_devices=4, process_count=3)


def test_two_processes_train_as_one_with_four_devices_and_a_killed_job_resumes_exactly(tmp_path):
    steps = ["--config.train.steps=96", "--config.train.checkpoint_every=16", "--config.train.log_every=16",
             "--config.train.max_checkpoints=10"]
    straight = tmp_path / "straight"
    codes, outs = finish(launch(straight, *steps))
    assert codes == [0, 0], outs
    assert "process 1: trained to step 96; process 0 evaluates" in outs[1]
    assert (straight / "eval.json").exists() and "eval/nll" in outs[0]

    one = tmp_path / "one_process"  # this interpreter: one process, 4 host devices (conftest)
    gt.run(smoke(train__steps=96, train__checkpoint_every=16, train__parallelism="sharded", train__num_devices=4),
           one)
    for a, b in zip(leaves(straight), leaves(one)):  # the same global batches; all-reduces group differently
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # kill -9 of both processes after the first checkpoint
    work = tmp_path / "interrupted"
    procs = launch(work, *steps)
    while not (work / "checkpoints" / "16").exists():
        time.sleep(0.02)
    for p in procs:
        p.kill()
    finish(procs)
    assert not (work / "eval.json").exists()
    # the restarted job resumes; a SIGTERM to process 1 alone stops both at one agreed step, each with its checkpoint
    kept = {p.name for p in (work / "checkpoints").iterdir()}
    procs = launch(work, *steps)
    while not {p.name for p in (work / "checkpoints").iterdir() if p.name.isdigit()} - kept:
        time.sleep(0.02)  # a new checkpoint: the restarted job is training (its signal handlers are set)
    procs[1].send_signal(signal.SIGTERM)
    codes, outs = finish(procs)
    assert codes == [0, 0], outs
    stopped = [int(o.split("stopped at step ")[1].split()[0]) for o in outs]
    assert stopped[0] == stopped[1] and stopped[0] % 16 == 0 and stopped[0] < 96
    # bit-identical to the uninterrupted job's checkpoint of that step
    config, family, target, _ = gt.restore_run(straight)
    store = CheckpointStore(straight / "checkpoints", create=False)
    expected = store.restore(target, stopped[0])[0]
    store.close()
    chex.assert_trees_all_equal(gt.restore_run(work)[2], expected)


def test_multi_process_start_up_errors_are_clear_and_bounded(tmp_path):
    # a coordinator nobody runs: a bounded wait, then an error naming the address
    t0 = time.time()
    port = free_port()
    proc = launch(tmp_path / "a", port=port, timeout_s=3, ids=[1])  # process 1 alone
    code, out = finish(proc)
    assert code[0] != 0 and f"could not join the job through the coordinator at localhost:{port}" in out[0]
    assert time.time() - t0 < 120

    # processes started with different configs: every process refuses, naming the setting
    codes, outs = finish(launch(tmp_path / "b", extra={1: ["--config.seed=7"]}))
    assert codes[0] != 0 and codes[1] != 0
    assert all("disagree on the config: process 1's differs from process 0's in seed: 0 -> 7" in o for o in outs), outs
    assert not (tmp_path / "b" / "checkpoints").exists()

    # a global batch that does not divide over the 4 devices of both processes
    codes, outs = finish(launch(tmp_path / "c", "--config.train.batch_size=6"))
    assert codes[0] != 0 and all("not divisible by the device count 4" in o for o in outs), outs
