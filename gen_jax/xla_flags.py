"""XLA flags to set *before* JAX initialises its backend (so this module imports nothing)."""

# Simulated host devices (--xla_force_host_platform_device_count) run as threads; on a loaded 2-core machine
# one can be starved past XLA:CPU's default 40-second collective timeout, which aborts the whole process
# (exit 134, every step since the last checkpoint lost). These make collectives wait 20 minutes instead.
CPU_COLLECTIVE_TIMEOUT_FLAGS = ("--xla_cpu_collective_timeout_seconds=1200"
                                " --xla_cpu_collective_call_terminate_timeout_seconds=1200")


def host_device_flags(num_devices: int) -> str:
    """``XLA_FLAGS`` for ``num_devices`` simulated CPU devices with patient collectives, e.g.
    ``os.environ["XLA_FLAGS"] = host_device_flags(4)`` before ``import jax`` touches a device."""
    return f"--xla_force_host_platform_device_count={num_devices} {CPU_COLLECTIVE_TIMEOUT_FLAGS}"
