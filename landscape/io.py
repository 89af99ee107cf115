"""Safe file output, in one place for every command.

* :func:`atomic_write`: write to a temporary file in the same folder (named ``.NAME.pPID.XXXX.tmp``),
  flush, fsync, then rename.  A crash at any moment leaves either the old file or the new one in place,
  never half of one.  Temporary files left by a killed writer (its pid is dead) are removed by the next
  write into the same folder (:func:`remove_stale_temporaries`).
* :func:`write_group`: several files that belong together (``analysis.json`` + ``report.html``) are
  all written to temporary files first, then renamed, and a manifest written last records the hash of
  each; :func:`check_group` tells whether the files on disk are one complete write.
* :class:`RunLock`: a run folder is claimed exclusively (``fcntl.flock`` on ``.landscape.lock``, which
  holds the owner's pid); the kernel releases it when the owner dies, so a stale lock breaks itself.
* :func:`check_distinct`: outputs are compared with inputs (resolved, following symlinks, and by
  inode), so no output ever replaces an input.
* :func:`check_outputs`: every output path of a command, checked before any work (writable, none of the
  inputs, not a member of another write's group).
* :func:`read_json`: the one reader of a result file; every failure (unreadable, not UTF-8, not JSON,
  nested too deeply) is one ``ValueError`` line naming the file.
* :func:`check_memory`: one size check against the available memory before any large allocation.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write",
    "write_json",
    "write_text",
    "write_group",
    "check_group",
    "claim_folder",
    "folder_owner",
    "sha256_file",
    "json_safe",
    "from_json_float",
    "from_json_array",
    "NONFINITE",
    "check_writable",
    "check_distinct",
    "check_not_in_group",
    "check_outputs",
    "check_suffix",
    "read_json",
    "check_memory",
    "available_memory",
    "format_bytes",
    "remove_stale_temporaries",
    "RunLock",
    "LOCK_NAME",
    "MANIFEST_NAME",
]

LOCK_NAME = ".landscape.lock"
MANIFEST_NAME = ".landscape-manifest.json"
# .NAME.pPID.RANDOM.tmp (this version) and .NAME.RANDOM.tmp (older versions, no pid)
_TMP_RE = re.compile(r"^\.(?P<name>.+?)\.(?:p(?P<pid>\d+)\.)?[A-Za-z0-9_]{6,}\.tmp$")
_LEGACY_TMP_AGE = 24 * 3600.0  # a temporary file without a pid is stale after a day
_FOREIGN_TMP_AGE = 60.0  # and one whose pid is dead after a minute (another host may share the folder)


def check_writable(path: str | os.PathLike, *, what: str = "output", create: bool = True) -> Path:
    """Return ``path`` as a Path, creating its parent folder; ``ValueError`` if it cannot be written.

    With ``create=False`` nothing is created: only the nearest existing ancestor is checked (a folder, and
    writable), so a long computation can fail early without leaving an empty folder behind.
    """
    if not str(path).strip():
        raise ValueError(f"{what} path is empty: expected a file path")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} path {str(p)!r} is a directory: expected a file path")
    for parent in p.parents:  # the nearest existing ancestor must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"{what} path {str(p)!r} cannot be written: {str(parent)!r} is a file, not a folder"
                )
            if not create and not os.access(parent, os.W_OK):
                raise ValueError(
                    f"{what} path {str(p)!r} cannot be written: folder {str(parent)!r} is not writable"
                )
            break
    if not create:
        return p
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} path {str(p)!r} cannot be written: {exc.strerror or exc}") from None
    if not os.access(p.parent, os.W_OK):
        raise ValueError(
            f"{what} path {str(p)!r} cannot be written: folder {str(p.parent)!r} is not writable"
        )
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, then atomically replace ``path``.

    The result has the permissions of the file it replaces, or the usual ``0o666 & ~umask`` for a new
    file (``mkstemp`` alone would leave it readable by its owner only).
    """
    p = check_writable(path)
    tmp = _write_temporary(p, write)
    try:
        os.replace(tmp, p)
    except BaseException as exc:
        _unlink(tmp)
        err = _as_os_error(exc, p)
        if err is exc:
            raise
        raise err from None
    _fsync_dir(p.parent)
    return p


def _unlink(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:  # make a rename durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _write_temporary(p: Path, write: Callable[[IO[bytes]], Any]) -> str:
    """Write ``p``'s future content to a fsynced temporary file beside it; return its path.

    On any failure (a full disk included) the temporary file is removed and the error re-raised as an
    ``OSError`` naming ``p``.
    """
    remove_stale_temporaries(p.parent)
    mode = (p.stat().st_mode & 0o777) if p.exists() else (0o666 & ~_umask())
    try:  # creating the temporary file fails on a full disk too (no inode, no block for the folder)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.p{os.getpid()}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise _as_os_error(exc, p) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        _unlink(tmp)
        err = _as_os_error(exc, p)
        if err is exc:
            raise
        raise err from None
    return tmp


_ENOSPC_TEXT = ("No space left on device", "file write failed", "enospc", "Disk quota exceeded")


def _as_os_error(exc: BaseException, p: Path) -> BaseException:
    """A writer's failure as an ``OSError`` naming the target ``p`` (never the temporary file, whose name
    means nothing to the user): an ``OSError`` of the write, of creating the temporary file or of the rename
    keeps its errno and text (``No space left on device: RUN/checkpoint.pt``); torch's zip writer reports a
    full disk as ``RuntimeError: ... file write failed`` or, on a full folder, ``... unexpected pos N vs M``,
    which would otherwise print a traceback."""
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(p))
        return exc
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        if any(t.lower() in text for t in _ENOSPC_TEXT) or (
            "unexpected pos" in text and _disk_full(p.parent)
        ):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(p))
    return exc


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has less than 1 MiB free for this user."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, *, names: Iterable[str] | None = None) -> list[Path]:
    """Delete temporary files of :func:`atomic_write` in ``folder`` whose writer is gone; return them.

    A temporary file is stale when the pid in its name is dead (and it is a minute old: another host may
    write into a shared folder), or, for names without a pid (older versions), when it is a day old.  A
    live writer's temporary file is never touched.  ``names`` restricts the cleanup to those targets.
    """
    removed: list[Path] = []
    wanted = set(names) if names is not None else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if not m or (wanted is not None and m.group("name") not in wanted):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid = m.group("pid")
        if pid is None:
            stale = age > _LEGACY_TMP_AGE
        else:
            stale = not _pid_alive(int(pid)) and (age > _FOREIGN_TMP_AGE or names is not None)
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


# -------------------------------------------------------------------------------------------------
# groups of files that must be seen together
# -------------------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_group(files: Mapping[str | os.PathLike, bytes | str]) -> list[Path]:
    """Write several files of one folder so that they become visible together.

    Every file is first written to a fsynced temporary file (a full disk or any error leaves all the old
    files as they were and no temporary file).  Then the folder's manifest (``.landscape-manifest.json``)
    is marked incomplete for these names, the files are renamed into place, and the manifest is written
    last with the sha256 of each.  A crash between two renames is therefore detected by
    :func:`check_group`, which compares the files on disk with the manifest.
    """
    paths = [check_writable(p) for p in files]
    if not paths:
        return []
    folder = paths[0].parent
    if any(p.parent.resolve() != folder.resolve() for p in paths):
        raise ValueError(f"write_group: the files {[str(p) for p in paths]} are not in one folder")
    staged: list[tuple[str, Path]] = []
    try:
        for p, content in zip(paths, files.values()):
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            staged.append((_write_temporary(p, lambda fh, d=data: fh.write(d)), p))
        manifest = folder / MANIFEST_NAME
        old = _read_manifest(manifest)
        keep = {
            k: v for k, v in old.items() if k not in ("complete", "writing", "group", "files")
        }  # the owner
        groups = {k: v for k, v in old.get("files", {}).items() if k not in {p.name for p in paths}}
        write_json(manifest, {**keep, "complete": False, "writing": [p.name for p in paths], "files": groups})
        for tmp, p in staged:
            os.replace(tmp, p)
        _fsync_dir(folder)
        names = [p.name for p in paths]
        groups.update(
            {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size, "group": names} for p in paths}
        )
        write_json(manifest, {**keep, "complete": True, "group": [p.name for p in paths], "files": groups})
    finally:
        for tmp, _ in staged:
            _unlink(tmp)
    return paths


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def claim_folder(folder: str | os.PathLike, owner: str) -> None:
    """Record in ``folder``'s manifest that ``owner`` (e.g. ``"landscape experiment"``) writes into it, keeping
    the manifest's groups; :func:`folder_owner` reads it back.  The folder must exist."""
    manifest = Path(folder) / MANIFEST_NAME
    old = _read_manifest(manifest)
    if old.get("owner") != owner:
        write_json(
            manifest,
            {**old, "owner": owner, "files": old.get("files", {}), "complete": old.get("complete", True)},
        )


def folder_owner(folder: str | os.PathLike) -> str | None:
    """The owner :func:`claim_folder` recorded in ``folder``'s manifest (None when there is none)."""
    owner = _read_manifest(Path(folder) / MANIFEST_NAME).get("owner")
    return owner if isinstance(owner, str) else None


def check_group(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """``ValueError`` unless ``names`` in ``folder`` are one complete :func:`write_group` (hashes match)."""
    folder = Path(folder)
    manifest = _read_manifest(folder / MANIFEST_NAME)
    names = list(names)
    if not manifest:
        raise ValueError(
            f"{folder}: no manifest {MANIFEST_NAME}: {', '.join(names)} were not written together"
        )
    if not manifest.get("complete", False):
        raise ValueError(
            f"{folder}: an interrupted write left {', '.join(manifest.get('writing', names))} incomplete: rerun it"
        )
    files = manifest.get("files", {})
    for name in names:
        p = folder / name
        rec = files.get(name)
        if (
            rec is None
            or not p.exists()
            or p.stat().st_size != rec.get("size")
            or sha256_file(p) != rec.get("sha256")
        ):
            raise ValueError(
                f"{p} does not belong to the last complete write of {folder} (changed or interrupted)"
            )


# -------------------------------------------------------------------------------------------------
# exclusive run folders
# -------------------------------------------------------------------------------------------------
class RunLock:
    """Claim ``folder`` exclusively for one process: ``with RunLock(out): ...``.

    The lock is ``fcntl.flock`` on ``folder/.landscape.lock``, a file that holds the owner's pid and
    host.  A second claimant is refused at once with a ``ValueError`` naming that pid.  The kernel drops
    the lock when its owner dies, however it dies, so a stale lock file (its pid dead) is simply taken
    over; the file is removed on release (after checking that it is still the file that was locked).

    The lock file is opened with ``O_NOFOLLOW`` and ``O_CREAT`` but never ``O_TRUNC``, and it is emptied
    only once the lock is held: a lock path that is a symbolic link, a directory, a FIFO, a socket or a
    file with other hard links is refused with a ``ValueError`` naming it, so no file it points at is
    ever truncated or written.
    """

    def __init__(self, folder: str | os.PathLike, *, what: str = "run folder"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    def _refuse(self, kind: str) -> ValueError:
        return ValueError(
            f"{self.what} {self.folder}: its lock {self.path} is {kind}, not a lock file landscape writes "
            "(a regular file): remove it and try again"
        )

    def _kind(self, st: os.stat_result | None = None) -> str:
        import stat

        try:
            st = st if st is not None else os.lstat(self.path)
        except OSError:
            return "not a regular file"
        mode = st.st_mode
        for test, kind in (
            (stat.S_ISLNK, "a symbolic link"),
            (stat.S_ISDIR, "a directory"),
            (stat.S_ISFIFO, "a FIFO"),
            (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a device"),
            (stat.S_ISBLK, "a device"),
        ):
            if test(mode):
                return kind
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            return f"a file with {st.st_nlink} hard links"
        return "not a regular file"

    def _open(self) -> int:
        """The lock file's descriptor: created if absent, never through a link, never truncated here."""
        import stat

        flags = (
            os.O_RDWR
            | os.O_CREAT
            | getattr(os, "O_NOFOLLOW", 0)
            | getattr(os, "O_NONBLOCK", 0)
            | getattr(os, "O_CLOEXEC", 0)
        )
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EOPNOTSUPP, errno.EMLINK):
                raise self._refuse(self._kind()) from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.close(fd)
            raise self._refuse(self._kind(st))
        return fd

    def acquire(self) -> RunLock:
        """Take the lock or raise one line naming its live owner (a lock file its previous owner removed meanwhile
        is opened again); returns ``self``."""
        import fcntl

        for _ in range(20):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = self._owner(fd)
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise ValueError(
                    f"{self.what} {self.folder} is in use by another landscape process ({owner}): "
                    "wait for it to finish or choose another --out"
                ) from None
            if not self._is_ours(fd):  # removed (or replaced) by its previous owner between open and flock
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)  # only now, with the lock held, and on the regular file just checked
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                os.fsync(fd)
            except OSError as exc:  # a full disk: one line naming the lock file, which is removed again
                self._fd = fd
                self.release()
                raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from None
            self._fd = fd
            return self
        raise ValueError(
            f"{self.what} {self.folder}: could not take its lock {self.path}"
        )  # pragma: no cover

    def _is_ours(self, fd: int) -> bool:
        """Whether the lock path still names the file open as ``fd`` (not followed if it is a link)."""
        try:
            a, b = os.fstat(fd), os.lstat(self.path)
        except FileNotFoundError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def _owner(self, fd: int) -> str:
        try:
            text = os.pread(fd, 512, 0).decode("utf-8", "replace").split()
        except OSError:
            text = []
        return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "pid unknown"

    def release(self) -> None:
        """Release the lock if this process holds it and remove the lock file; a second call does nothing."""
        if self._fd is None:
            return
        try:
            if self._is_ours(self._fd):
                _unlink(self.path)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_no_owner_above(
    folder: str | os.PathLike, *, allowed: str | os.PathLike | None = None, what: str = "run folder"
) -> None:
    """``ValueError`` when a folder above ``folder`` is claimed by a live landscape process: its
    ``.landscape.lock`` is held (:class:`RunLock`).  ``landscape experiment`` holds its folder's lock for its
    whole lifetime, so a training into one of its runs (``train --overwrite --out EXP/runs/NAME``) is refused,
    naming the owner's pid, instead of replacing a model whose results the experiment is computing.

    ``allowed``: a folder above whose lock the caller itself holds (the experiment training its own runs, in
    its process or its workers').  The lock is probed with a shared, non-blocking ``flock`` that is dropped
    at once; a lock file left by a dead process is not held and does not count.
    """
    import fcntl
    import stat

    here = Path(os.path.abspath(folder))
    skip = Path(os.path.abspath(allowed)) if allowed is not None else None
    for parent in here.parents:
        if parent == skip:
            continue
        lock = parent / LOCK_NAME
        try:
            fd = os.open(
                lock,
                os.O_RDONLY
                | getattr(os, "O_NOFOLLOW", 0)
                | getattr(os, "O_NONBLOCK", 0)
                | getattr(os, "O_CLOEXEC", 0),
            )
        except OSError:  # no lock there (or not one landscape writes: RunLock refuses it when it is taken)
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                owner = RunLock(parent)._owner(fd)
                raise ValueError(
                    f"{what} {folder} is inside {parent}, which is in use by another landscape process ({owner}): "
                    "wait for it to finish or choose another --out"
                ) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# -------------------------------------------------------------------------------------------------
# outputs never replace inputs; sizes are checked before they are allocated
# -------------------------------------------------------------------------------------------------
def _identity(p: Path) -> tuple[Path, tuple[int, int] | None]:
    resolved = Path(os.path.realpath(p))
    try:
        st = os.stat(resolved)
        return resolved, (st.st_dev, st.st_ino)
    except OSError:
        return resolved, None


def check_distinct(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike], *, what: str = "--out"
) -> None:
    """``ValueError`` if any output is one of the inputs.

    Paths are compared after resolving symlinks and ``..``, and existing files also by device and inode
    (a hard link is the same file).  An input folder counts as itself: an output equal to an input
    folder is refused, an output inside it is not (a run folder may receive an analysis).
    """
    ins = [(Path(i), *_identity(Path(i))) for i in inputs]
    for o in outputs:
        po = Path(o)
        ro, ido = _identity(po)
        for pi, ri, idi in ins:
            if ro == ri or (ido is not None and ido == idi):
                raise ValueError(
                    f"{what} {po} is the input {pi}: writing it would destroy the input (choose another path)"
                )


def check_not_in_group(path: str | os.PathLike, *, together: Iterable[str] = (), what: str = "--out") -> None:
    """``ValueError`` if writing ``path`` would break a :func:`write_group` of its folder: its manifest lists
    the file as a member of a group (``ANA/report.html`` of an analysis folder, ``claims.html`` of a claims
    folder) and this write does not replace that whole group (``together``: the names written with ``path``,
    in one :func:`write_group`).  Written alone, such a file would no longer be what its group was, and the
    folder would fail its own :func:`check_group` or, worse, pass it with a page of something else."""
    p = Path(os.path.realpath(path))
    manifest = _read_manifest(p.parent / MANIFEST_NAME)
    files = manifest.get("files")
    entry = files.get(p.name) if isinstance(files, dict) else None
    if entry is None:
        return
    last = manifest.get("group") if isinstance(manifest.get("group"), list) else []
    members = (
        entry.get("group")
        if isinstance(entry, dict) and isinstance(entry.get("group"), list)
        else (last if p.name in last else [p.name, "?"])
    )
    if not set(map(str, members)) <= {p.name, *together}:
        others = ", ".join(sorted(str(m) for m in members if m != p.name))
        raise ValueError(
            f"{what} {Path(path)} belongs to the files written together in {p.parent} (with {others}, listed in its "
            f"{MANIFEST_NAME}): writing it alone would break that group; choose another name"
        )


def check_outputs(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike] = (), *, what: str = "--out"
) -> list[Path]:
    """Every output path of a command, checked before any work or write: none is empty or a folder, each one's
    folder can be written (:func:`check_writable`, nothing created), none is an input (:func:`check_distinct`)
    or a file of another write's group (:func:`check_not_in_group`: the outputs of one folder are taken as
    written together, as :func:`write_group` writes them), and no two are the same file.  The paths."""
    outs = [Path(o) for o in outputs]
    check_distinct(outs, list(inputs), what=what)
    for i, o in enumerate(outs):
        check_writable(o, what=what, create=False)
        check_distinct([o], outs[:i], what=what)
        together = [q.name for q in outs if os.path.realpath(q.parent) == os.path.realpath(o.parent)]
        check_not_in_group(o, together=together, what=what)
    return outs


def check_suffix(
    path: str | os.PathLike, suffixes: Iterable[str], *, writes: str, what: str = "--out"
) -> Path:
    """``path`` if its suffix is one of ``suffixes`` (any case), else ``ValueError`` naming the path, the
    suffixes and what the command ``writes`` there: a file's name says what it holds (``hessian --out h.npz``
    would be JSON in a file named .npz)."""
    p = Path(path)
    allowed = [x.lower() for x in suffixes]
    if p.suffix.lower() not in allowed:
        raise ValueError(
            f"{what} {p}: expected a file name ending in {' or '.join(allowed)} (it writes {writes}), "
            f"not {p.suffix or 'no suffix'}"
        )
    return p


def read_json(path: str | os.PathLike, *, expected: str = "a JSON file") -> Any:
    """The JSON value in ``path``.  Every failure is one ``ValueError`` line that names the file and
    ``expected``: a missing or unreadable file, bytes that are not UTF-8, text that is not JSON, JSON nested
    too deeply for the parser (a ``RecursionError``)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{p}: is a folder, expected {expected}") from None
    except FileNotFoundError:
        raise ValueError(f"{p}: no such file, expected {expected}") from None
    except OSError as exc:
        raise ValueError(f"{p}: cannot be read ({exc.strerror or exc}), expected {expected}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{p}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): expected {expected}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{p}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): expected {expected}"
        ) from None
    except RecursionError:
        raise ValueError(f"{p}: JSON nested too deeply to read: expected {expected}") from None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``; None when unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(nbytes: float, what: str, *, fraction: float = 0.8) -> None:
    """``ValueError`` naming ``what`` when ``nbytes`` exceeds ``fraction`` of the available memory.

    Called before any allocation whose size comes from the user (numbers of samples, grid points), so a
    typo such as ``--samples 1000000000`` is refused in one line instead of exhausting the machine.
    ``LANDSCAPE_MEMORY_LIMIT`` (bytes) lowers the limit (tests use it).
    """
    avail = available_memory()
    env = os.environ.get("LANDSCAPE_MEMORY_LIMIT", "").strip()
    if env:
        try:
            limit = float(env)
        except ValueError:
            raise ValueError(f"LANDSCAPE_MEMORY_LIMIT={env!r}: expected a number of bytes") from None
        avail = limit if avail is None else min(avail, limit)
    if avail is None or not math.isfinite(nbytes):
        if math.isfinite(nbytes):
            return
    elif nbytes <= fraction * avail:
        return
    have = "unknown" if avail is None else format_bytes(fraction * avail)
    raise ValueError(f"{what} needs about {format_bytes(nbytes)} of memory, more than the {have} available")


#: How a non-finite float is written in every JSON file of the package (strict JSON has no NaN or Inf): the
#: strings below.  ``null`` is kept for "absent" (a quantity not computed), so it never stands for a number.
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def json_safe(obj: Any) -> Any:
    """The one JSON encoder of the package: tensors, numpy values, dtypes, tuples, paths and objects with a
    ``to_dict()`` become plain JSON values, recursively.

    NaN and ±Inf become the strings ``"nan"``, ``"inf"``, ``"-inf"`` (:data:`NONFINITE`), so the file stays
    strict JSON and a missing value (``None``, written ``null``) stays distinct from a number that is not
    finite; :func:`from_json_float` and :func:`from_json_array` read them back.  A ``torch.dtype`` becomes its
    name without the ``torch.`` prefix (``"float64"``).
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return json_safe(obj.to_dict())
    if hasattr(obj, "tolist") and callable(obj.tolist):  # torch / numpy
        return json_safe(obj.tolist())
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if type(obj).__module__ == "torch" and type(obj).__name__ == "dtype":  # torch stays a lazy import here
        return str(obj).removeprefix("torch.")
    return str(obj)


def from_json_float(v: Any) -> float:
    """One number as :func:`json_safe` wrote it: a number, or ``"nan"`` / ``"inf"`` / ``"-inf"``.

    ``None`` reads as NaN too, so older files stay readable: their curvature results wrote a non-finite number
    as ``null``.  Anything else is a one-line ``ValueError``."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        if v not in NONFINITE:
            raise ValueError(f"{v!r}: expected a number or one of {sorted(NONFINITE)}")
        return NONFINITE[v]
    if isinstance(v, (bool, np.bool_)) or not (isinstance(v, numbers.Real) or hasattr(v, "__float__")):
        raise ValueError(f"{v!r}: expected a number or one of {sorted(NONFINITE)}")
    return float(v)  # a number, a numpy scalar or a one-element tensor


def from_json_array(v: Any) -> np.ndarray:
    """An array as :func:`json_safe` wrote it (nested lists of what :func:`from_json_float` reads), as
    float64 with NaN and ±Inf restored; a ragged nesting is a one-line ``ValueError``.  A numeric numpy array
    passes straight through (as float64)."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "fiu":
        return v.astype(np.float64)
    a = np.array(v, dtype=object)
    return np.array([from_json_float(e) for e in a.ravel()], dtype=np.float64).reshape(a.shape)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Atomically write ``obj`` (made JSON-safe) to ``path``."""
    text = json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
