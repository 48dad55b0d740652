"""The paper's data sets → WebDataset shards for ``ldce predict``: one subcommand per data set.

Each sample carries its label, its class name (``json`` ``class_name``, for prompts and captions)
and its index in the data set (``json`` ``index``, which per-image target files refer to)::

    python -m ldce.datamodules.datasets imagenet --root ILSVRC2012/val \\
        --class_names configs/classes/imagenet.txt --output "data/imagenet/val-%06d.tar"
    python -m ldce.datamodules.datasets imagenet --root ILSVRC2012/val --classes 339 340 --order folder \\
        --class_names configs/classes/imagenet.txt --output "data/imagenet_pairs/zebra_sorrel-%06d.tar"
    python -m ldce.datamodules.datasets celebahq --root CelebAMask-HQ --attribute Smiling \\
        --attributes_file CelebAMask-HQ/CelebAMask-HQ-attribute-anno.txt \\
        --partition_file celeba/list_eval_partition.txt --output "data/celebahq/smile-%06d.tar"
    python -m ldce.datamodules.datasets flowers102 --root flowers-102 \\
        --class_names configs/classes/flowers102.txt --output "data/flowers/test-%06d.tar"
    python -m ldce.datamodules.datasets pets --root oxford-iiit-pet --output "data/pets/test-%06d.tar"

The readers are :mod:`ldce.datamodules.imagenet`, :mod:`ldce.datamodules.celebahq` and
:mod:`ldce.datamodules.oxford`; files and orders are described there.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ldce.checks import ArgumentParser
from ldce.classifiers.names import read_class_names
from ldce.datamodules.celebahq import PARTITIONS, celebahq_items
from ldce.datamodules.folders import ShardItem
from ldce.datamodules.imagenet import imagenet_items
from ldce.datamodules.oxford import FLOWERS_SPLITS, flowers102_items, pets_items
from ldce.datamodules.shards import write_shards

log = logging.getLogger(__name__)


def _names(path: Path | None) -> list[str] | None:
    return None if path is None else read_class_names(path)


def _imagenet(args: argparse.Namespace) -> list[ShardItem]:
    return imagenet_items(args.root, args.labels, _names(args.class_names), args.classes, args.order)


def _celebahq(args: argparse.Namespace) -> list[ShardItem]:
    return celebahq_items(
        args.root, args.attribute, args.attributes_file, args.partition_file, args.partition, _names(args.class_names)
    )


def _flowers102(args: argparse.Namespace) -> list[ShardItem]:
    return flowers102_items(args.root, read_class_names(args.class_names), args.split)


def _pets(args: argparse.Namespace) -> list[ShardItem]:
    return pets_items(args.root, args.split, _names(args.class_names))


def _add_common(parser: argparse.ArgumentParser, names_required: bool = False) -> None:
    parser.add_argument("--root", type=Path, required=True, help="the data set's folder (original layout)")
    parser.add_argument("--output", required=True, help='shard pattern, e.g. "data/x/test-%%06d.tar"')
    parser.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument("--class_names", type=Path, required=names_required, help="class names, one per line")


def build_parser() -> argparse.ArgumentParser:
    """``imagenet``, ``celebahq``, ``flowers102`` and ``pets`` subcommands, each with its reader."""
    parser = ArgumentParser(prog="ldce datasets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="dataset", required=True)
    imagenet = commands.add_parser("imagenet", help="ILSVRC2012 validation set")
    _add_common(imagenet)
    imagenet.add_argument(
        "--labels",
        type=Path,
        help="for a flat image folder: the devkit folder "
        "(ILSVRC2012_devkit_t12) or a labels file (val.txt, LOC_val_solution.csv)",
    )
    imagenet.add_argument("--classes", type=int, nargs="+", help="keep only these class indices")
    imagenet.add_argument(
        "--order",
        choices=("blocks", "folder"),
        default="blocks",
        help="blocks: one image per class in each block of 1000 (the reference's); folder: by class",
    )
    imagenet.set_defaults(read=_imagenet)
    celebahq = commands.add_parser("celebahq", help="CelebA-HQ with one binary CelebA attribute")
    _add_common(celebahq)
    celebahq.add_argument("--attribute", default="Smiling", help="attribute name or index (Smiling = 31, Young = 39)")
    celebahq.add_argument(
        "--attributes_file", type=Path, required=True, help="list_attr_celeba.txt or CelebAMask-HQ-attribute-anno.txt"
    )
    celebahq.add_argument("--partition_file", type=Path, required=True, help="CelebA's list_eval_partition.txt")
    celebahq.add_argument("--partition", choices=tuple(PARTITIONS), default="test")
    celebahq.set_defaults(read=_celebahq)
    flowers = commands.add_parser("flowers102", help="Oxford Flowers-102")
    _add_common(flowers, names_required=True)
    flowers.add_argument("--split", choices=tuple(FLOWERS_SPLITS), default="test")
    flowers.set_defaults(read=_flowers102)
    pets = commands.add_parser("pets", help="Oxford-IIIT Pets")
    _add_common(pets)
    pets.add_argument("--split", choices=("trainval", "test"), default="test")
    pets.set_defaults(read=_pets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Read the chosen data set and write its shards; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    read: Callable[[argparse.Namespace], list[ShardItem]] = args.read
    items = read(args)
    log.info("%s: %d images", args.dataset, len(items))
    write_shards(items, args.output, args.maxcount)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
