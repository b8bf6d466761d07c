"""Train state, step helpers, multi-device wrapper, loop, checkpoints, evaluators and metric writers."""

from gen_jax.train.checkpoint import CheckpointCorruptError, CheckpointStore
from gen_jax.train.config import default_config, validate_config
from gen_jax.train.loop import CHECKPOINT_CHOICES, checkpoint_suffix, resolve_checkpoint, restore_run, run
from gen_jax.train.metrics import MetricWriter, NonFiniteError, check_finite, read_metrics
from gen_jax.train.optim import make_optimizer, make_schedule
from gen_jax.train.parallel import compile_step, replicate, resolve_num_devices, unreplicate
from gen_jax.train.state import TrainState, create_train_state
from gen_jax.train.step import make_train_step
from gen_jax.train.workdir import WorkdirBusyError
