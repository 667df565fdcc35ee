"""archive.atomic_write: a failed write (full disk, unwritable folder) is a SavingError naming the
file and leaves the old file as it was; a new file gets the umask's mode and an overwritten one
keeps its own; temporary files of killed writers are removed, and nothing else is."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

import lamina
from lamina import layers
from lamina.saving import SavingError, archive

fcntl = pytest.importorskip("fcntl")  # the orphan check needs file locks (POSIX)


def _model():
    model = lamina.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile("adam", "mse")
    return model


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("name", ["m.lamina", "m.keras", "m.weights.h5", "m.safetensors"])
def test_modes_follow_the_umask_and_an_overwritten_file_keeps_its_own(tmp_path, name):
    model, path = _model(), tmp_path / name
    save = model.save_weights if "weights" in name or name.endswith(".safetensors") else model.save
    old = os.umask(0o027)
    try:
        save(path)
        assert _mode(path) == 0o640  # 0o666 less the umask, as open() gives
        os.chmod(path, 0o604)
        save(path)
        assert _mode(path) == 0o604
    finally:
        os.umask(old)


def test_a_full_disk_is_a_saving_error_and_the_old_file_survives(tmp_path, monkeypatch):
    model, path = _model(), tmp_path / "m.lamina"
    model.save(path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    model.layers[0].kernel.data += 1
    with pytest.raises(SavingError, match=f"Cannot write '{path}': No space left on device"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.lamina"]  # the temporary file is gone too


def test_an_unwritable_path_is_a_saving_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" / "m.lamina"
    with pytest.raises(SavingError, match=f"Cannot write '{target}'"):
        _model().save(target)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_a_saving_error_and_the_old_file_survives(tmp_path):
    model, path = _model(), tmp_path / "ro" / "m.lamina"
    model.save(path)
    before = path.read_bytes()
    os.chmod(path.parent, 0o555)
    try:
        with pytest.raises(SavingError, match=f"Cannot write '{path}': Permission denied"):
            model.save(path)
    finally:
        os.chmod(path.parent, 0o755)
    assert path.read_bytes() == before


def test_orphan_temporary_files_are_removed_and_nothing_else(tmp_path):
    path = tmp_path / "m.lamina"
    orphans = [".m.lamina.0123456789abcdef.tmp", ".m.lamina.fedcba9876543210.tmp"]
    kept = [".m.lamina.notmine.tmp", ".x.lamina.0123456789abcdef.tmp", "m.lamina.0123456789abcdef.tmp",
            ".m.lamina.0123456789abcdef.tmp.bak", ".m.lamina.0123456789ABCDEF.tmp", "notes.txt"]
    for name in orphans + kept:
        (tmp_path / name).write_bytes(b"partial")
    live = tmp_path / ".m.lamina.00000000aaaaaaaa.tmp"  # a writer at work holds its lock
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        _model().save(path)
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, live.name, "m.lamina"])
    assert lamina.load_model(path).predict(np.ones((1, 3)), verbose=0).shape == (1, 2)
    archive.remove_orphan_temps(path)  # the writer has let go
    assert not live.exists()


def test_concurrent_writers_of_one_file_never_remove_each_others_files(tmp_path):
    """Each write cleans up orphans first; a live writer's file is locked until its rename."""
    import threading

    path, errors = tmp_path / "m.safetensors", []

    def writer(payload):
        try:
            for _ in range(60):
                archive.atomic_write(path, lambda f: f.write(payload))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(bytes([i]) * 4096,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert path.read_bytes() in {bytes([i]) * 4096 for i in range(3)}
    assert os.listdir(tmp_path) == ["m.safetensors"]
