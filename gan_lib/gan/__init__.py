"""The GAN: DCGAN networks, training them, and the files a run leaves behind.

``models`` holds the generator and discriminator; ``sampling`` the snapshot files and the
sampling rule (``generate``); ``nets`` the pair with its optimisers and EMA; ``train`` the
loop (``train.train(cfg)``) and ``train_step``, the paper's two updates; ``batches`` what each
step sees (seeded streams); ``augment`` DiffAugment; ``milestones`` what is written after a
step (grids, snapshots under the sampling rule, checkpoints); ``checkpoint`` exact resume;
``legacy`` what runs of earlier versions lack; ``runinfo`` the run folder and its readers;
``runlock`` one writer per run; ``grids`` image grids; ``launch`` training on every visible
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
    nets,
    run_state,
    runinfo,
    runlock,
    sampling,
    train,
)
from .models import Discriminator, Generator, to_uint8
from .nets import Networks, build_nets
from .runinfo import list_snapshots, load_run_config, run_path
from .runlock import RunBusy
from .sampling import (
    generate,
    load_generator,
    read_snapshot,
    recalibrate_batchnorm,
    save_snapshot,
)

__all__ = ["models", "sampling", "legacy", "nets", "train", "batches", "augment", "milestones",
           "checkpoint", "runinfo", "run_state", "runlock", "grids", "launch",
           "Generator", "Discriminator", "generate", "load_generator", "read_snapshot",
           "save_snapshot", "recalibrate_batchnorm", "to_uint8", "Networks", "build_nets",
           "list_snapshots", "load_run_config", "run_path", "RunBusy"]
