"""The GAN: DCGAN networks, training them, and the files a run leaves behind.

``models`` holds the generator and discriminator; ``sampling`` the snapshot files and the
sampling rule (``generate``); ``trainable`` the pair with its optimisers and EMA; ``train`` the
loop (``train.train(cfg)``) and ``train_step``, the paper's two updates; ``batches`` what each
step sees (seeded streams); ``augment`` DiffAugment; ``milestones`` what is written after a
step (grids, snapshots under the sampling rule, checkpoints); ``checkpoint`` exact resume;
``legacy`` what runs of earlier versions lack; ``run_folder`` the run folder and its readers;
``run_lock`` one writer per run; ``grids`` image grids; ``launch`` training on every visible
GPU with ``torchrun``. Scoring reads what this package writes to disk and never imports
training.
"""

from . import (
    augment,
    batches,
    checkpoint,
    grids,
    launch,
    legacy,
    milestones,
    models,
    run_folder,
    run_lock,
    sampling,
    train,
    trainable,
    training_run,
)
from .models import Discriminator, Generator, to_uint8
from .run_folder import list_snapshots, load_run_config, run_path
from .run_lock import RunBusy
from .sampling import (
    generate,
    load_generator,
    read_snapshot,
    recalibrate_batchnorm,
    save_snapshot,
)
from .trainable import Networks, build_nets

__all__ = ["models", "sampling", "legacy", "trainable", "train", "batches", "augment", "milestones",
           "checkpoint", "run_folder", "training_run", "run_lock", "grids", "launch",
           "Generator", "Discriminator", "generate", "load_generator", "read_snapshot",
           "save_snapshot", "recalibrate_batchnorm", "to_uint8", "Networks", "build_nets",
           "list_snapshots", "load_run_config", "run_path", "RunBusy"]
