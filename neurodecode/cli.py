"""Command-line interface: a thin layer over the public Python API.

``neurodecode info``      versions and data locations
``neurodecode datasets``  the dataset registry and what is on this machine
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _cmd_info(args) -> int:
    import importlib.metadata as md
    import platform

    from . import __version__
    from .paths import cache_dir, data_root, mne_data_path

    print(f"neurodecode {__version__} (Python {platform.python_version()})")
    for pkg in ("numpy", "scipy", "pandas", "scikit-learn", "torch", "mne", "moabb",
                "mne-bids", "pyriemann", "nilearn", "nibabel", "h5py", "ray"):
        try:
            version = md.version(pkg)
        except md.PackageNotFoundError:
            version = "not installed"
        print(f"  {pkg:<13} {version}")
    try:
        import torch

        device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        device = "torch missing"
    print(f"device:      {device}")
    print(f"data root:   {data_root()}")
    print(f"MNE data:    {mne_data_path()}")
    print(f"cache:       {cache_dir()}")
    return 0


def _cmd_datasets(args) -> int:
    from .registry import list_datasets

    table = list_datasets()
    if args.available:
        table = table[table["available"]]
    # The source (where the data would be downloaded from) is always shown: the registry's
    # point is to say what exists and where to get it; --paths adds the local folders.
    cols = ["name", "modality", "subjects", "available", "source"] + (["path"] if args.paths else [])
    import pandas as pd

    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(table[cols].to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurodecode", description="Decoding for EEG, iEEG and fMRI."
    )
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("info", help="versions, device and data locations")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("datasets", help="list registered datasets and whether they are on this machine")
    p.add_argument("--available", action="store_true", help="only the datasets found locally")
    p.add_argument("--paths", action="store_true", help="also show the local folder of each dataset")
    p.add_argument("--sources", action="store_true", help=argparse.SUPPRESS)  # default now; kept for old scripts
    p.set_defaults(func=_cmd_datasets)
    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Other modules add sub-commands here (benchmark, pretrain, finetune).
_EXTRA_COMMANDS: list = []


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from .errors import NeurodecodeError

        if isinstance(err, (NeurodecodeError, KeyError, ValueError, FileNotFoundError)):
            print(f"neurodecode: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
