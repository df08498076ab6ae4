"""Train on every visible GPU: ``torchrun`` as a subprocess, its progress streamed here.

The notebooks and ``make report`` call :func:`train` instead of ``train.train``: with two or
more GPUs it starts ``torchrun --standalone --nproc_per_node=N -m gan_lib -- train ...`` with
the same settings (DDP, see scale/distributed.py) and copies its output (rank 0's progress bar and
messages) to this process's stdout as it comes; with one GPU or none it is ``train.train`` in
this process, unchanged.

Example:
    >>> from gan_lib import config
    >>> cfg = config.make_train_config("smoke", name="demo", source="phantom")
    >>> command(cfg, 2, resume=True)[:6]
    ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'gan_lib']
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from .. import config
from ..config import TrainConfig
from ..typed_settings import format_set
from . import train as training


def default_processes() -> int:
    """One process per visible GPU (CUDA_VISIBLE_DEVICES applies); 1 without a GPU."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
          processes: int | None = None) -> Path:
    """Train ``cfg`` like ``train.train``, in ``processes`` processes (default: one per GPU).

    More than one: a torchrun subprocess whose output streams here; a failure raises with the
    last lines of that output. Returns the run folder.
    """
    n = default_processes() if processes is None else processes
    if n < 1:
        raise ValueError(f"processes={n}: expected 1 or more (None: one per visible GPU)")
    if n == 1:
        return training.train(cfg, resume=resume, overwrite=overwrite)
    proc = subprocess.Popen([sys.executable, *command(cfg, n, resume, overwrite)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "GAN_LIB_HOME": str(config.HOME)})
    tail = b""
    for chunk in iter(lambda: proc.stdout.read1(4096), b""):
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
        tail = (tail + chunk)[-4000:]
    if proc.wait() != 0:
        raise RuntimeError(f"torchrun with {n} processes failed (exit {proc.returncode}); "
                           f"its last output:\n{tail.decode(errors='replace')}")
    return config.RUNS_DIR / cfg.name


def command(cfg: TrainConfig, processes: int, resume: bool = False,
            overwrite: bool = False) -> list[str]:
    """The arguments after ``python`` that train ``cfg`` in ``processes`` processes on this host."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in ("name", "profile")}
    profile = cfg.profile if cfg.profile in config.PROFILES else "smoke"  # every value is set
    return ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            # "--": the rest is gan_lib's (torchrun would take --run, a prefix of its --run-path)
            "-m", "gan_lib", "--", "train", "--profile", profile, "--run", cfg.name,
            *(f"--set={s}" for s in format_set(settings)),
            *(["--resume"] if resume else []), *(["--overwrite"] if overwrite else [])]


__all__ = ["train", "command", "default_processes"]
