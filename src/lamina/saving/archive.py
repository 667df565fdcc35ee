"""The container of a .lamina file: a zip archive of uncompressed entries, written atomically.

Entries are stored, not compressed, so every entry's size is bounded by the file's size on disk: a
file cannot declare a small entry that inflates to gigabytes, and each read is capped at the size
the entry was written with. Writing goes to a temporary file in the same folder, which is flushed,
fsync'ed and renamed over the target, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import zipfile

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from lamina.saving.errors import SavingError

MAX_ENTRIES = 32
MAX_JSON_BYTES = 64 * 2**20
# Keras and lamina store archive entries uncompressed; an archive recompressed by another tool
# shrinks weights by about 1.1 and configs by about 10. An entry that expands more is refused
# before it is inflated: a zip bomb of zeros would otherwise cost up to 1032 times its size.
_DEFLATE_MAX_RATIO = 64
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip timestamps fixed, so that equal models give equal files


def atomic_write(path, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then move it over `path`.

    A new file gets the mode a plain open() gives (0o666 less the umask); a file written over
    keeps its mode. Temporary files that killed writers left for `path` are removed first. A
    failure to write (a full disk, a folder without write permission) is a SavingError naming
    `path`, and leaves any previous file as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        remove_orphan_temps(path)
        fd, tmp = _locked_temp(path)
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        # Where files lock, the locked descriptor stays open until the rename is done, so that no
        # cleaner takes the finished file for an orphan (Windows renames closed files only).
        with os.fdopen(fd if fcntl is None else os.dup(fd), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(path, e) from e
        raise
    finally:
        if fcntl is not None:
            os.close(fd)
    _fsync_directory(directory)


def _write_error(path, error) -> SavingError:
    return SavingError(f"Cannot write '{path}': {error.strerror or error}. Any previous file "
                       "there is unchanged.")


def _temp_pattern(path) -> re.Pattern:
    """The names of `atomic_write`'s temporary files for `path` (and only those)."""
    return re.compile(re.escape(f".{os.path.basename(path)}.") + r"[0-9a-f]{16}\.tmp")


def _locked_temp(path) -> tuple[int, str]:
    """A new temporary file beside `path`, open and locked for as long as its writer lives (so
    that `remove_orphan_temps` can tell it from one a killed writer left)."""
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        with contextlib.suppress(OSError):  # a file system without locks: its cleaner skips it too
            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not removed as an orphan between its creation and the lock
            return fd, tmp
        os.close(fd)


def remove_orphan_temps(path) -> None:
    """Remove the temporary files of `path` whose writer was killed: files of `atomic_write`'s
    naming pattern that no living process holds locked. Without file locks (Windows) nothing
    can be told apart, and nothing is removed."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    pattern = _temp_pattern(os.fspath(path))
    if fcntl is None or not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if not pattern.fullmatch(name):
            continue
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(os.path.join(directory, name))
        except OSError:  # locked: a writer is at work; or gone already
            pass
        finally:
            os.close(fd)


def _fsync_directory(directory) -> None:
    """Make the rename itself durable (where the platform lets a folder be fsync'ed)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_archive(path, entries: dict[str, bytes]) -> None:
    """Write `entries` (name -> bytes) as a stored zip archive at `path`, atomically."""
    if len(entries) > MAX_ENTRIES:
        raise SavingError(f"An archive holds at most {MAX_ENTRIES} entries; got {len(entries)}.")

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, data in entries.items():
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)

    atomic_write(path, write)


class Archive:
    """A zip archive opened for bounded, checked reads. Use as a context manager.

    Entries may be stored or deflated (by a tool that recompressed a Keras archive); a deflated
    entry may declare at most _DEFLATE_MAX_RATIO times its compressed size, and no read returns
    more than the declared size, so memory stays bounded by the file's size whatever it claims.
    """

    def __init__(self, path, what="model file", allow_compressed=False):
        self.path = os.fspath(path)
        self.what = what
        try:
            self.disk_size = os.path.getsize(self.path)
            self._zip = zipfile.ZipFile(self.path, "r")
        except FileNotFoundError as e:
            raise SavingError(f"No such {what}: '{self.path}'.") from e
        except Exception as e:  # zipfile reports a broken directory with several exception types
            raise self.error(f"it is not a readable zip archive ({type(e).__name__}: {e})") from e
        try:
            self._infos = self._checked_infos(allow_compressed)
        except SavingError:
            self.close()
            raise

    def _checked_infos(self, allow_compressed) -> dict:
        infos = self._zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise self.error(f"it has {len(infos)} entries (at most {MAX_ENTRIES} are expected)")
        methods = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) if allow_compressed else (
            zipfile.ZIP_STORED,)
        checked = {}
        for info in infos:
            name = info.filename
            if info.compress_type not in methods or info.flag_bits & 0x1:
                raise self.error(f"entry '{name}' is encrypted or compressed in a way lamina does "
                                 "not read")
            ceiling = info.compress_size * (_DEFLATE_MAX_RATIO if info.compress_type else 1)
            if info.compress_size > self.disk_size or info.file_size > ceiling + 64:
                raise self.error(
                    f"entry '{name}' declares {info.file_size} bytes, more than its "
                    f"{info.compress_size} stored bytes may hold (a zip bomb, or a damaged file)"
                )
            if name in checked:
                raise self.error(f"entry '{name}' appears twice")
            checked[name] = info
        return checked

    def require_stored(self) -> None:
        """Refuse compressed entries (lamina writes its own files uncompressed)."""
        for name, info in self._infos.items():
            if info.compress_type != zipfile.ZIP_STORED:
                raise self.error(f"entry '{name}' is compressed; lamina files store entries as "
                                 "they are")

    def error(self, reason) -> SavingError:
        return SavingError(f"Cannot load {self.what} '{self.path}': {reason}.")

    def names(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, name) -> bool:
        return name in self._infos

    def size(self, name) -> int:
        return self._infos[name].file_size

    def read(self, name, limit=None) -> bytes:
        """The bytes of entry `name`, at most `limit` (default: its declared size), CRC-checked."""
        info = self._infos.get(name)
        if info is None:
            raise self.error(f"entry '{name}' is missing")
        limit = info.file_size if limit is None else min(limit, info.file_size)
        try:
            with self._zip.open(info) as f:
                data = f.read(limit + 1)
                if len(data) > limit:
                    raise self.error(f"entry '{name}' is larger than {limit} bytes")
                if len(data) < info.file_size:
                    raise self.error(f"entry '{name}' is truncated")
                f.read(1)  # reading to the end makes zipfile check the entry's CRC-32
        except SavingError:
            raise
        except Exception as e:  # zipfile reports corruption with several exception types
            raise self.error(f"entry '{name}' is corrupted ({type(e).__name__}: {e})") from e
        return data

    def read_json(self, name, limit=MAX_JSON_BYTES):
        data = self.read(name, limit)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise self.error(f"entry '{name}' is not valid JSON ({type(e).__name__}: {e})") from e

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def is_zip(path) -> bool:
    try:
        return zipfile.is_zipfile(os.fspath(path))
    except OSError:
        return False


def dumps(value) -> bytes:
    """JSON bytes for an archive entry (finite numbers only, as JSON requires)."""
    return json.dumps(value, allow_nan=False, sort_keys=False).encode("utf-8")
