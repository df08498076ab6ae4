from .config import TrainConfig, ScoreConfig, make_train_config, make_score_config
