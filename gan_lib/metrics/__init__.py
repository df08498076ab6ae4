"""Metrics: how good a run's generated images are, as numbers with their provenance.

``inception_weights`` finds, converts and checks the FID Inception's weights;
``variant_rule`` decides how it runs (precision, BatchNorm folding, torch.compile), with
``calibrate``'s measurement of every candidate on this machine where "auto" leaves it open;
``feature_extractor`` builds it in that variant (``resize``: its resize to 299 px,
bit-identical to torch-fidelity's, compiled for compiled extraction); ``extraction`` streams
images through it and logs what went through; ``features``
caches the features of real and generated sets by what produced them; ``frechet`` is the one
Fréchet distance; ``is_fid_kid`` the registry of metrics, IS / FID / KID over features
(torch-fidelity's functions); ``score_record`` the one record type of every scores.json line;
``scoring`` has :func:`score_run`, which scores every snapshot of a run with its floors into
``scores.json``; ``score_tables`` turns scores into the tables and captions people read;
``provenance`` builds the one header that scores.json, audit.json, protocols.json and
utility.json begin with. It reads runs from disk (``gan``) and never imports training.
"""

from . import (
    calibrate,
    extraction,
    feature_extractor,
    features,
    frechet,
    inception_weights,
    is_fid_kid,
    provenance,
    resize,
    score_record,
    score_tables,
    scoring,
    variant_rule,
)
from .extraction import extract_features
from .feature_extractor import Extractor, load_extractor
from .frechet import fid_from_statistics, frechet_distance, torch_fidelity_fid
from .inception_weights import EXTRACTOR
from .is_fid_kid import (
    METRICS,
    compare,
    inception_score,
    kid_from_features,
    metric_name,
    register_metric,
    score_images,
    statistics,
)
from .score_record import LineProvenance, ScoreRecord
from .scoring import floor_plan, generated_count, load_real, score_config, score_run

__all__ = ["inception_weights", "variant_rule", "calibrate", "feature_extractor", "extraction", "resize",
           "features", "frechet", "is_fid_kid", "scoring", "score_tables", "provenance",
           "score_run", "score_config", "score_images", "load_real", "compare", "floor_plan",
           "generated_count", "metric_name", "statistics", "inception_score",
           "kid_from_features", "frechet_distance", "fid_from_statistics", "torch_fidelity_fid",
           "EXTRACTOR", "Extractor", "METRICS", "register_metric", "ScoreRecord", "LineProvenance",
           "score_record", "extract_features", "load_extractor"]
