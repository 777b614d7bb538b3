"""One run per work_dir: a lock file that a second run finds, and that dies with its owner.

The lock is ``WORK_DIR/kdzoo.lock``, held with ``fcntl.flock`` and holding the owner's pid, host, start time
and command line. The kernel drops the flock when its process ends (even on SIGKILL), so a lock file left by a
dead run is stale by construction: the next run takes it over and logs a warning naming the old owner. In a
distributed run only rank 0 takes the lock (see :class:`kdzoo.engine.runner.KdzooRunner`).
"""
import atexit
import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time

from mmengine.logging import print_log

LOCK_NAME = 'kdzoo.lock'

_held = {}   # lock path -> [file object, users]: runners in one process share their process's lock


class WorkDirLockedError(RuntimeError):
    """Another live run holds the work_dir."""


def acquire_work_dir(work_dir):
    """Take ``work_dir``'s lock for this process (shared by every runner in it); returns the lock path.

    Raises :class:`WorkDirLockedError` naming the owner when another live process holds it."""
    path = osp.join(osp.abspath(work_dir), LOCK_NAME)
    if path in _held:
        _held[path][1] += 1
        return path
    os.makedirs(osp.dirname(path), exist_ok=True)
    while True:
        handle = open(path, 'a+')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(handle)
            handle.close()
            raise WorkDirLockedError(_locked_message(work_dir, path, owner)) from None
        if _same_file(handle, path):   # else the owner deleted it between our open and flock: retry
            break
        handle.close()
    previous = _read_owner(handle)
    if previous:
        print_log(f'{work_dir}: taking over a stale lock left by {_describe(previous)}: that process has ended '
                  'without releasing it (killed?)', logger='current', level=30)
    handle.seek(0)
    handle.truncate()
    json.dump(dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime('%Y-%m-%d %H:%M:%S'),
                   command=' '.join(sys.argv)), handle)
    handle.flush()
    _held[path] = [handle, 1]
    return path


def release_work_dir(path):
    """Give back one use of the lock at ``path``; the last one deletes the file and drops the flock."""
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[path]
    handle = entry[0]
    try:
        os.remove(path)   # while still holding the flock, so no other run can be between
    except FileNotFoundError:
        pass
    handle.close()


@atexit.register
def _release_all():
    for path in list(_held):
        _held[path][1] = 1
        release_work_dir(path)


def _same_file(handle, path):
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_owner(handle):
    handle.seek(0)
    try:
        return json.loads(handle.read() or 'null')
    except ValueError:
        return None


def _describe(owner):
    return (f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}, running "
            f"`{owner.get('command')}`")


def _locked_message(work_dir, path, owner):
    who = _describe(owner) if owner else 'a process that is still writing its details'
    return (f'work_dir {work_dir} is in use by another run ({who}); two runs in one work_dir overwrite each '
            f"other's checkpoints. Wait for it to finish or pass another --work-dir. If that run is gone "
            f'(e.g. on another host), delete {path}.')
