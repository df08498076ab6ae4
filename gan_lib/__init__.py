"""gan_lib: DCGAN on pediatric chest X-rays: data, training, IS/FID/KID scoring, the report."""

from .config import ScoreConfig, TrainConfig, make_score_config, make_train_config

__all__ = ["ScoreConfig", "TrainConfig", "make_score_config", "make_train_config"]
__version__ = "0.1.0"
