"""WebDataset shards: a project's images and annotations as plain tar files, for training-speed reads."""

from __future__ import annotations

from slyfs.formats.registry import IMAGES, Format
from slyfs.formats.webdataset.view import WebDatasetProjectDir

FORMAT = Format(
    name="webdataset",
    title="WebDataset shards",
    project_types=frozenset({IMAGES}),
    help=("<dataset>/<dataset>-000000.tar: shards of about --shard-size (default 1 GiB); each sample is\n"
          "<key>.<ext> (the image's own bytes) and <key>.json (its annotation, as in sly/); the key is\n"
          "the image name without extension, its dots turned into _, unique in the dataset (~2, ~3...)"),
    view=WebDatasetProjectDir,
    rank=6,
)
