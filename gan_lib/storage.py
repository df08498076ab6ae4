"""Atomic file writes and hashing, shared by every module that writes to disk.

A write goes to a temporary file in the destination folder and is renamed over the target only
when complete, so an interrupted run never leaves a truncated checkpoint, cache or figure. A
full disk (or quota) is :class:`NoSpaceLeft`, which says where, how much was needed and how
much is free; the temporary file is removed and the target keeps its last complete version.
What is written for people names no folder of this machine (:func:`portable`).

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> write_json(p, {"x": 1}); read_json(p)
    {'x': 1}
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from . import config

# A temporary file of atomic_path: ".<target name>.<writer's pid>.<random>.tmp<suffix>"; files
# of the earlier form (no pid) are matched too, as ".<target name>.<random>.tmp<suffix>".
TEMP_NAME = re.compile(r"\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp(\.\w+)?")
STALE_SECONDS = 24 * 3600  # a temporary file this old is stale whoever wrote it


class NoSpaceLeft(OSError):
    """A write the disk (or the user's quota) has no room for.

    >>> str(NoSpaceLeft("/data/runs/x", 12_500_000, free=3_000_000))
    'no space left on /data/runs/x: 12.5 MB needed, 3.0 MB free. Free some space (or set GAN_LIB_HOME to a folder on a larger disk) and run the command again: the files written before are complete'
    """

    def __init__(self, folder: str | os.PathLike, needed: int | None, free: int | None = None,
                 at_least: bool = False):
        free = _free_bytes(folder) if free is None else free
        need = (f"{free / 1e6:.1f} MB free, and more was needed" if needed is None else
                f"{'at least ' if at_least else ''}{needed / 1e6:.1f} MB needed, "
                f"{free / 1e6:.1f} MB free")
        self.message = (f"no space left on {folder}: {need}. Free "
                        "some space (or set GAN_LIB_HOME to a folder on a larger disk) and run "
                        "the command again: the files written before are complete")
        super().__init__(errno.ENOSPC, self.message, str(folder))

    def __str__(self) -> str:
        return self.message


def _free_bytes(folder: str | os.PathLike) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _is_no_space(err: BaseException | None) -> bool:
    """ENOSPC or EDQUOT, raised here or underneath (torch's writer wraps the OSError of a full
    disk in a RuntimeError about 'unexpected pos')."""
    for _ in range(5):
        if err is None:
            return False
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err = err.__cause__ or err.__context__
    return False


@contextlib.contextmanager
def space_checked(folder: str | os.PathLike, needed: int | None = None,
                  written: Callable[[], int] | None = None) -> Iterator[None]:
    """Turn a full disk met in the block into :class:`NoSpaceLeft` (``needed`` bytes, or at
    least what ``written()`` says had been written), naming ``folder``."""
    try:
        yield
    except NoSpaceLeft:
        raise
    except (OSError, RuntimeError) as err:
        if not _is_no_space(err):
            raise
        if needed is None and written is not None:
            raise NoSpaceLeft(folder, written() + 1, at_least=True) from None
        raise NoSpaceLeft(folder, needed) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file's name carries the writer's pid, so that :func:`remove_stale_temps` can
    tell the leftovers of a killed writer from the files of one still writing. ``size`` (bytes,
    when the caller knows it) is checked against the free space before anything is written; a
    disk that fills up meanwhile is :class:`NoSpaceLeft` too, and the temporary file goes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size is not None and _free_bytes(path.parent) < size:
        raise NoSpaceLeft(path.parent, size)
    with space_checked(path.parent, size):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with space_checked(path.parent, size, written=lambda: _size(tmp)):
            yield tmp
            os.chmod(tmp, 0o644)  # mkstemp makes files private; these are ordinary outputs
            _fsync(tmp)  # the bytes reach the disk before the name points at them
            os.replace(tmp, path)
            _fsync(path.parent)  # and the rename itself survives a power cut
    finally:
        tmp.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` whose writer is gone.

    A writer killed mid-write (SIGKILL, power cut) leaves its temporary file behind, up to tens
    of MB for a feature cache. One is stale when the pid in its name is no process on this host,
    or when it is older than :data:`STALE_SECONDS` (an earlier name without a pid, or a pid
    reused since). Returns the files removed.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / ".a.npz.999999999.abcd_123.tmp.npz").write_bytes(b"x")
    >>> [p.name for p in remove_stale_temps(d)]
    ['.a.npz.999999999.abcd_123.tmp.npz']
    """
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.glob(".*.tmp*"):
        match = TEMP_NAME.fullmatch(path.name)
        if not match or not path.is_file():
            continue
        pid = match.group("pid")
        try:
            old = now - path.stat().st_mtime > STALE_SECONDS
            if old or (pid is not None and not process_alive(int(pid))):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
    return removed


def process_alive(pid: int) -> bool:
    """Is ``pid`` a process on this host (of any user)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:  # not a pid at all
        return False
    return True


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save``, atomic; the same object gives the same bytes at any path.

    Saved through a file object, the archive's inner folder is always ``archive``; saved by
    name, torch would name it after the temporary file, and equal weights would hash apart
    (feature caches are keyed by a snapshot's SHA-256).
    """
    buffer = io.BytesIO()  # serialised first: its size is checked against the free space
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    with atomic_path(path, size=data.nbytes) as tmp, open(tmp, "wb") as f:
        f.write(data)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, numbers, strings, lists and dicts only."""
    return torch.load(path, map_location=map_location, weights_only=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    data = text.encode("utf-8")
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; an error naming the file (and where) when it is not JSON.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "scores.json"; _ = p.write_text('{"a": 1,')
    >>> read_json(p)
    Traceback (most recent call last):
    ...
    ValueError: .../scores.json is not valid JSON (Expecting property name enclosed in double quotes at line 1, column 9): it was edited or cut short. Restore it, or rerun the step that wrote it (train, score, audit, quiz)
    """
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column "
                         f"{err.colno}): it was edited or cut short. Restore it, or rerun the "
                         "step that wrote it (train, score, audit, quiz)") from None


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file; an error naming the file and the first bad byte when it is not."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): expected "
                         "the file as gan_lib (or the quiz page) wrote it; restore it, or save "
                         "it again as UTF-8") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of an append-only JSON-lines file.

    Only a torn last line (a writer killed mid-line: no newline after it) is dropped; any other
    malformed line is an error naming it, since skipping it would silently lose records.
    """
    text = read_text(path)
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):  # the last line, with no newline after it: torn
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({err.msg}): "
                             f"{line[:80]!r}. Repair or remove that line.") from None
    return rows


# Paths written into anything meant to be shared (the report, result files, captions) name no
# folder of this machine; the data fingerprint does the identifying. A run folder's own
# config.json keeps the absolute source it reloads its images from.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~$<>-])/(?=[\w.~-])[^\s\"'<>|,;()\[\]{}`*]*")
SYSTEM_DIRS = ("/dev/", "/proc/", "/sys/", "/usr/", "/etc/", "/bin/", "/lib/", "/opt/")


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as shared files write it: ``<site-packages>/...`` inside installed packages;
    relative to the repository when inside it; ``$GAN_LIB_DATA/...`` or ``$GAN_LIB_HOME/...``
    under those; relative to the repository if that stays below the file system's root (a
    sibling such as ``../shared/data/chest_xray``); else ``.../<name>``, its name only.

    >>> portable_path(config.REPO_ROOT / "data" / "x.pth"), portable_path("/no-such/scratch/rt")
    ('data/x.pth', '.../rt')
    """
    p = Path(os.path.abspath(os.fspath(path)))
    roots = [*((Path(d), "<site-packages>/") for d in _site_dirs()), (config.REPO_ROOT, ""),
             (config.DATA_DIR, "$GAN_LIB_DATA/"), (config.HOME, "$GAN_LIB_HOME/")]
    for root, prefix in roots:  # installed packages first: a .venv may be inside the clone
        if p.is_relative_to(root):
            rel = p.relative_to(root).as_posix()
            return (prefix + rel if rel != "." else prefix.rstrip("/")) or "."
    rel = Path(os.path.relpath(p, config.REPO_ROOT))
    if rel.parts.count("..") < len(config.REPO_ROOT.parts) - 1:  # not up to the root
        return rel.as_posix()
    return f".../{p.name}"


def local_path(shared: str) -> Path:
    """The file a :func:`portable_path` form names here (its inverse, where there is one); an
    absolute path (a file written before paths were portable) as it is.

    >>> local_path("data/cache/x.pth") == config.REPO_ROOT / "data" / "cache" / "x.pth"
    True
    """
    for prefix, root in (("$GAN_LIB_HOME/", config.HOME), ("$GAN_LIB_DATA/", config.DATA_DIR)):
        if shared.startswith(prefix):
            return root / shared[len(prefix):]
    if shared.startswith("<site-packages>/"):
        rest = shared[len("<site-packages>/"):]
        return next((Path(d) / rest for d in _site_dirs() if (Path(d) / rest).exists()),
                    Path(_site_dirs()[0]) / rest)
    if shared.startswith(".../"):
        raise ValueError(f"{shared!r} names a folder outside the repository by its name only")
    return Path(shared) if os.path.isabs(shared) else config.REPO_ROOT / shared


def portable(obj: Any) -> Any:
    """``obj`` (JSON-like) with every absolute path inside its strings in
    :func:`portable_path`'s form (system folders such as /usr/ are left alone).

    >>> portable({"w": str(config.REPO_ROOT / "w.pth"), "n": 3, "t": f"in {config.REPO_ROOT}"})
    {'w': 'w.pth', 'n': 3, 't': 'in .'}
    """
    if isinstance(obj, str):
        return ABSOLUTE_PATH.sub(lambda m: m.group(0) if m.group(0).startswith(SYSTEM_DIRS)
                                 else portable_path(m.group(0)), obj)
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(portable(v) for v in obj)
    return obj


def _site_dirs() -> list[str]:
    """Where installed packages live (the FID weights' file is inside one), longest first."""
    import site
    import sysconfig

    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            *(site.getsitepackages() if hasattr(site, "getsitepackages") else [])}
    return sorted(dirs, key=len, reverse=True)
