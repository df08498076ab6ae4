"""Data: the images a run trains on and is scored against, as one uint8 tensor per split.

:func:`load_dataset` turns a source (a Kermany ``chest_xray`` folder, a PneumoniaMNIST
``.npz``, the built-in ``phantom`` or ``auto``) into :class:`ChestXrayData` ([N, 1, S, S]
uint8, labels, a fingerprint), decoding each image file once (``imagefile``) and caching the
result under ``data/cache/``; ``folder_layout`` lists a Kermany-layout folder (or says what
is wrong with it); ``summaries`` describes a loaded set for people (text, split counts,
original file sizes, citation); ``sizes`` reads the original files' sizes and aspect ratios
from their headers (every split, nothing decoded). ``phantom`` draws the synthetic chest-like
data set; ``pneumoniamnist`` finds and reads MedMNIST files. Nothing here knows about networks.
"""

from . import folder_layout, imagefile, load, phantom, pneumoniamnist, sizes, summaries
from .load import (
    CLASS_NAMES,
    LAYOUT,
    SPLITS,
    SUBSET_SEED,
    ChestXrayData,
    load_dataset,
    resolve_auto,
    subset_order,
)
from .phantom import make_phantom
from .sizes import aspect_table, file_sizes
from .summaries import KERMANY_CITATION, raw_size_stats, resized_note, split_counts, summarize

__all__ = ["load_dataset", "ChestXrayData", "resolve_auto", "summarize", "split_counts",
           "raw_size_stats", "resized_note", "make_phantom", "KERMANY_CITATION", "CLASS_NAMES",
           "LAYOUT", "SPLITS", "SUBSET_SEED", "subset_order", "file_sizes", "aspect_table",
           "folder_layout", "imagefile", "load", "summaries", "sizes", "phantom",
           "pneumoniamnist"]
