"""Uploading a pack (`kagexp pack --upload`) and pushing its kernel (`kagexp push-kernel`) with the
official client. The dataset is uploaded from a folder of hard links to the pack's files without
`kernel/` and `rehearsal/`, so a rehearsal's working folder never ends up in the dataset."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kagexp import kaggle_cli, packformat
from kagexp.errors import NotFoundError


def upload_dataset(pack_dir: Path) -> int:
    """`kaggle datasets version` when the dataset exists, else `kaggle datasets create`; the
    pack's folders go up zipped (Kaggle unpacks them). Returns the client's exit code."""
    pack_dir = pack_dir.resolve()
    manifest = packformat.read_manifest(pack_dir)
    kaggle_cli.executable()  # a missing client or credentials is said before anything is staged
    staging = pack_dir.parent / f".{pack_dir.name}.upload-{os.getpid()}"
    try:
        shutil.copytree(pack_dir, staging, ignore=shutil.ignore_patterns(*packformat.NOT_UPLOADED), copy_function=_link)
        if kaggle_cli.succeeds(["datasets", "status", manifest.dataset]):
            message = f"kagexp pack of {', '.join(manifest.runs)}"
            return kaggle_cli.call(["datasets", "version", "-p", str(staging), "-m", message, "-r", "zip"])
        return kaggle_cli.call(["datasets", "create", "-p", str(staging), "-r", "zip"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link(src: str, dst: str) -> None:
    """A hard link where the file system allows it (no copy of large models), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def push_kernel(pack_dir: Path) -> int:
    """`kaggle kernels push -p PACK/kernel`; returns the client's exit code."""
    packformat.read_manifest(pack_dir)
    kernel = pack_dir.resolve() / packformat.KERNEL
    if not (kernel / packformat.KERNEL_METADATA).is_file():
        raise NotFoundError(f"{kernel} has no {packformat.KERNEL_METADATA}; pack the run again")
    return kaggle_cli.call(["kernels", "push", "-p", str(kernel)])
