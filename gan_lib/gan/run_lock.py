"""One writer per run folder: an exclusive lock for as long as a process writes into a run.

``train``, ``score``, ``audit``, the other studies and ``make report`` write into
``runs/<name>/``; two of them at once would interleave the loss log or replace each other's
checkpoint. :func:`hold` takes ``fcntl.flock`` on ``runs/.<name>.lock`` (beside the folder, so
``overwrite`` may delete the folder while holding it). The kernel releases a flock when its
holder dies, however it dies, so a crash never leaves a run locked; the file stays behind and
names the last holder.

A process that finds the lock taken raises :class:`RunBusy` naming the holder's pid. Two cases
share a lock instead:

- the same process taking it again (``score`` called inside ``make report``): a count;
- a descendant of the holder: the report runs the notebooks in kernels (child processes) that
  call ``train`` and ``score`` on the run it holds. The holder puts a random token in the lock
  file and in :data:`ENV` of its environment; a process whose environment carries the token
  of the lock, while the lock is still held, works under its ancestor's lock.

Under ``torchrun`` rank 0 takes the lock and every rank learns whether it got it, so all ranks
stop together.

A report build takes a second lock of the same kind, :func:`hold_reports`, on
``reports/.report.lock``: two reports in one output folder would share its staging folder, and
one would publish the other's notebooks under its own header.

Example:
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "demo"
    >>> with hold(run, "train"):
    ...     holder(run)["action"]
    'train'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .. import config, storage
from ..scale import distributed

F = TypeVar("F", bound=Callable[..., Any])

REPORT_LOCK = ".report.lock"  # in the reports folder: one report build at a time
ENV = "GAN_LIB_RUN_LOCK_TOKENS"  # tokens of locks that an ancestor holds, comma-separated
_held: dict[Path, list[int]] = {}  # lock file -> [fd, depth] of the locks this process holds


class RunBusy(FileExistsError):
    """Another process is writing into the run folder."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    """``runs/.<name>.lock`` for ``runs/<name>`` (the folder need not exist).

    >>> lock_path("/tmp/runs/quick").name
    '.quick.lock'
    """
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike, action: str, share: bool = False) -> Iterator[None]:
    """Hold the lock of ``run_dir`` for the block; :class:`RunBusy` if another process has it.

    ``action`` (train, score, ...) is written into the lock file for the message another
    process shows. ``share=True``: also put the lock's token into ``os.environ`` for the block,
    so that child processes started in it (notebook kernels) work under this lock.
    """
    with _hold(lock_path(run_dir), action, share, _busy_message):
        yield


@contextlib.contextmanager
def hold_reports(reports_dir: str | os.PathLike, action: str) -> Iterator[None]:
    """One report build at a time in ``reports_dir``: its lock ``.report.lock`` held for the
    block (inside the folder: the folder is the report's own); :class:`RunBusy` naming the
    holder when another process builds there.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "reports"
    >>> with hold_reports(out, "report of run 'quick'"):
    ...     read_holder(out / REPORT_LOCK)["action"]
    "report of run 'quick'"
    """
    with _hold(Path(reports_dir).resolve() / REPORT_LOCK, action, False, _report_busy_message):
        yield


@contextlib.contextmanager
def _hold(path: Path, action: str, share: bool,
          busy: Callable[[Path, dict[str, Any]], str]) -> Iterator[None]:
    if path in _held:  # this process holds it already
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    fd, problem = _acquire(path, action, busy) if distributed.is_main() else (None, None)
    if distributed.total(int(problem is not None)):  # all ranks stop when rank 0 could not lock
        raise RunBusy(problem or f"rank 0 could not take {path}; see its message")
    if fd is None:  # a rank other than 0, or an ancestor holds the lock: nothing to release
        yield
        return
    _held[path] = [fd, 1]
    token = json.loads(os.pread(fd, 4096, 0))["token"]
    before = os.environ.get(ENV)
    if share:
        os.environ[ENV] = ",".join(filter(None, [before, token]))
    try:
        yield
    finally:
        if share and before is None:
            os.environ.pop(ENV, None)
        elif share:
            os.environ[ENV] = before
        del _held[path]
        os.close(fd)  # releases the flock


def locked(action: str) -> Callable[[F], F]:
    """Decorate a function whose first argument is a run (name or folder) that it writes into:
    it runs holding the run's lock. A folder that is not a run (outside runs/ and without a
    config.json: a folder of the user's such as ``/etc`` or a data split), or none at all, is
    not locked, so no lock file lands beside it; the function then reports it."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(run: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
            folder = Path(run) if Path(run).is_dir() else config.RUNS_DIR / str(run)
            if not _is_run(folder):
                return fn(run, *args, **kwargs)
            with hold(folder, action):
                return fn(run, *args, **kwargs)
        return inner  # type: ignore[return-value]
    return wrap


def _is_run(folder: Path) -> bool:
    """A folder of runs/ (config.json may not be written yet: training creates the folder
    first), or one that its config.json marks as a run."""
    return folder.is_dir() and (folder.resolve().parent == config.RUNS_DIR.resolve()
                                or (folder / "config.json").is_file())


def _acquire(path: Path, action: str, busy: Callable[[Path, dict[str, Any]], str],
             ) -> tuple[int | None, str | None]:
    """(fd holding the lock, None), (None, None) under an ancestor's lock, or (None, message)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        found = _holder_record(fd)
        os.close(fd)
        if found.get("token") and found["token"] in os.environ.get(ENV, "").split(","):
            return None, None
        return None, busy(path, found)
    record = {"pid": os.getpid(), "action": action, "token": secrets.token_hex(8),
              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd, None


def _busy_message(path: Path, found: dict[str, Any]) -> str:
    run = path.parent / path.name[1:-len(".lock")]
    who = (f"process {found['pid']} ({found.get('action', '?')}, since {found.get('started')})"
           if "pid" in found else "another process (it has not written its pid yet)")
    return (f"Run folder {run} is in use by {who}: one process at a time may write into a "
            f"run. Wait for it to finish (or stop it: kill {found.get('pid', 'PID')}), then "
            "try again; to work on a copy, use another run name.")


def _report_busy_message(path: Path, found: dict[str, Any]) -> str:
    who = (f"process {found['pid']} ({found.get('action', '?')}, since {found.get('started')})"
           if "pid" in found else "another process (it has not written its pid yet)")
    return (f"Report folder {path.parent} is in use by {who}: one report is built at a time "
            f"in a folder (they would share its staging folder). Wait for it to finish (or "
            f"stop it: kill {found.get('pid', 'PID')}), then try again.")


def _holder_record(fd: int, patience: float = 2.0) -> dict[str, Any]:
    """The record of the process holding the lock on ``fd``'s file.

    The holder writes its record just after it takes the lock, so a process that meets the
    lock in that instant reads an empty file or the previous holder's record: read again
    (for up to ``patience`` seconds) until the record names a living process.
    """
    end = time.monotonic() + patience
    while True:
        found = _read(fd)
        if _names_a_living_process(found) or time.monotonic() > end:
            return found
        time.sleep(0.02)


def _names_a_living_process(found: dict[str, Any]) -> bool:
    try:
        return storage.process_alive(int(found["pid"]))
    except (KeyError, ValueError, TypeError):  # no pid yet, or not a number
        return False


def _read(fd: int) -> dict[str, Any]:
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def holder(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What the lock file of ``run_dir`` says of its last holder (pid, action, started), or {}."""
    return read_holder(lock_path(run_dir))


def read_holder(path: str | os.PathLike) -> dict[str, Any]:
    """What the lock file ``path`` says of its last holder (pid, action, started), or {}."""
    path = Path(path)
    if not path.is_file():
        return {}
    fd = os.open(path, os.O_RDONLY)
    try:
        return _read(fd)
    finally:
        os.close(fd)


__all__ = ["hold", "hold_reports", "REPORT_LOCK", "locked", "holder", "read_holder", "lock_path",
           "RunBusy", "ENV"]
