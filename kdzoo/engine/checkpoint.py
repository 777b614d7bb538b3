"""The Runner's checkpoints and work_dir: saves that survive kills, resumes that say what they do, one run per dir.

:class:`RunnerCheckpointing` is mixed into :class:`kdzoo.engine.runner.KdzooRunner`, the Runner kdzoo's tools
build. Three changes to mmengine's Runner, each small:

* **Atomic checkpoints.** :meth:`KdzooRunner.save_checkpoint` writes ``.NAME.<pid>.partial`` in the same
  folder, syncs it to disk and ``os.replace``-s it onto ``NAME``, so a kill while saving never leaves a
  truncated ``epoch_N.pth`` under its final name.
* **Resume that says what it does.** ``--resume`` with no checkpoint in the work dir logs a WARNING that
  training starts from scratch; an explicit ``--resume CKPT`` that does not exist is refused; a
  ``last_checkpoint`` that is empty or names a missing, truncated or unreadable file (and likewise an unreadable
  explicit checkpoint) is skipped with a WARNING saying which file and why, and the newest intact checkpoint
  of the work dir is used. Every checkpoint error names the config key it came from (``load_from``,
  ``--resume``). A file refused as unsafe is never skipped: that error stops the run.
* **One run per work_dir.** The Runner takes ``WORK_DIR/kdzoo.lock`` (:mod:`kdzoo.engine.work_dir_lock`)
  before it writes its config there; a second run is refused, naming the owner. Only rank 0 takes it, and
  every rank learns the outcome. The lock is given back when ``train``/``val``/``test`` return or raise.

The Runner's checkpoints are read by :func:`kdzoo.models.weights.load_checkpoint_file` (``weights_only=True``
with a scoped allow-list), which mmengine reaches through kdzoo's local-file loader (kdzoo.utils.compat).
"""
import contextlib
import glob
import os
import os.path as osp

from mmengine.dist import broadcast_object_list, master_only
from mmengine.fileio import LocalBackend, get_file_backend

from kdzoo.models.weights import UnreadableCheckpointError, checkpoint_source

from .work_dir_lock import WorkDirLockedError, acquire_work_dir, release_work_dir

CHECKPOINT_PATTERNS = ('epoch_*.pth', 'iter_*.pth')   # what CheckpointHook writes; best_*.pth is not resumed


class RunnerCheckpointing:
    """Mixin for :class:`mmengine.runner.Runner`: atomic checkpoints, honest resume and a work_dir lock."""

    _work_dir_lock = None

    # --------------------------------------------------------------------------------- one run per work_dir

    def dump_config(self):
        """The first write of ``Runner.__init__`` another run would clobber: the lock is taken just before."""
        self._lock_work_dir()
        super().dump_config()

    def _lock_work_dir(self):
        outcome = [None, None]   # lock path, error message: decided by rank 0, told to every rank
        if self.rank == 0:
            try:
                outcome[0] = acquire_work_dir(self.work_dir)
                remove_partial_checkpoints(self.work_dir)
            except WorkDirLockedError as error:
                outcome[1] = str(error)
        if self.world_size > 1:
            broadcast_object_list(outcome)
        if outcome[1]:
            raise WorkDirLockedError(outcome[1])
        self._work_dir_lock = outcome[0] if self.rank == 0 else None

    def release_work_dir(self):
        if self._work_dir_lock:
            release_work_dir(self._work_dir_lock)
            self._work_dir_lock = None

    def train(self):
        with self._holding_work_dir():
            return super().train()

    def val(self):
        with self._holding_work_dir():
            return super().val()

    def test(self):
        with self._holding_work_dir():
            return super().test()

    @contextlib.contextmanager
    def _holding_work_dir(self):
        try:
            yield
        finally:
            self.release_work_dir()

    # ---------------------------------------------------------------------------------- atomic checkpoints

    @master_only
    def save_checkpoint(self, out_dir, filename, file_client_args=None, *args, backend_args=None, **kwargs):
        """mmengine's save, written to a temporary name in ``out_dir`` and renamed into place."""
        backend = get_file_backend(out_dir, backend_args=backend_args)
        if file_client_args is not None or not isinstance(backend, LocalBackend):
            return super().save_checkpoint(out_dir, filename, file_client_args, *args, backend_args=backend_args,
                                           **kwargs)
        partial = f'.{filename}.{os.getpid()}.partial'
        super().save_checkpoint(out_dir, partial, None, *args, backend_args=backend_args, **kwargs)
        partial_path = osp.join(out_dir, partial)
        with open(partial_path, 'rb') as written:
            os.fsync(written.fileno())
        os.replace(partial_path, osp.join(out_dir, filename))

    # ------------------------------------------------------------------------------------------------ load

    def load_or_resume(self):
        if self._has_loaded:
            return
        if self._resume:
            self._resume_newest_intact()
        elif self._load_from is not None:
            with checkpoint_source('load_from'):
                self.load_checkpoint(self._load_from)

    def _resume_newest_intact(self):
        explicit = self._load_from
        key = '--resume' if explicit is None else f'--resume {explicit} (load_from with resume=True)'
        if explicit is not None and not osp.isfile(explicit):
            raise FileNotFoundError(
                f'{key}: no such file. Give an existing checkpoint, or --resume alone to resume from the newest '
                f'checkpoint in {self.work_dir}.')
        first = [explicit] if explicit is not None else self._last_checkpoint()
        candidates = list(dict.fromkeys(first + newest_checkpoints(self.work_dir, *map(osp.dirname, first))))
        if not candidates:
            self.logger.warning(f'--resume: no checkpoint in {self.work_dir}, so training starts from scratch.')
            return
        skipped = []
        for path in candidates:
            try:
                with checkpoint_source(key):
                    self.resume(path)
            except UnreadableCheckpointError as error:
                skipped.append(path)
                self.logger.warning(f'{error} Skipped it; trying the next newest checkpoint.')
                continue
            if skipped:
                self.logger.warning(f'{key}: resuming from {path}, the newest intact checkpoint, instead of '
                                    f'{", ".join(skipped)}')
            self._has_loaded = True
            return
        raise UnreadableCheckpointError(
            f'{key}: no intact checkpoint to resume from; unreadable: {", ".join(skipped)}. Delete them to start '
            'from scratch, or give a good checkpoint with --resume CKPT.')

    def _last_checkpoint(self):
        """The file ``WORK_DIR/last_checkpoint`` names, as a list of zero or one paths (warning when unusable)."""
        record = osp.join(self.work_dir, 'last_checkpoint')
        if not osp.isfile(record):
            return []
        with open(record) as f:
            named = f.read().strip()
        if not named:
            self.logger.warning(f'--resume: {record} is empty (the run was killed while writing it?); looking for '
                                f'the newest intact checkpoint in {self.work_dir}')
            return []
        if not osp.isfile(named):
            self.logger.warning(f'--resume: {record} names {named}, which does not exist; looking for the newest '
                                f'intact checkpoint in {self.work_dir}')
            return []
        return [named]


def newest_checkpoints(*folders):
    """CheckpointHook's checkpoints (``epoch_N.pth``, ``iter_N.pth``) in ``folders``, newest first."""
    found = {osp.abspath(path) for folder in folders if folder for pattern in CHECKPOINT_PATTERNS
             for path in glob.glob(osp.join(folder, pattern))}
    return sorted(found, key=osp.getmtime, reverse=True)


def remove_partial_checkpoints(folder):
    """Left by a run killed while saving; only the work_dir's lock holder may call this."""
    for path in glob.glob(osp.join(folder, '.*.partial')):
        os.remove(path)
