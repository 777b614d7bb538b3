"""The child processes of a benchmark: their environment, their logged output, ending exactly them."""
import os
import os.path as osp
import subprocess
import threading
import time
from collections import deque

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # the folder that holds the kdzoo package

LOG_TAIL_LINES = 30


def threads_per_worker(workers):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(1, cpus // max(1, workers))


def child_env(threads):
    """The environment of a child run: ``threads`` OpenMP/MKL threads, unbuffered output, kdzoo importable.

    OpenMP threads wait passively (unless OMP_WAIT_POLICY is set): on cores shared with other processes,
    spinning threads made a 2-thread CPU run 15x slower in this project's measurements."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    return env


class ProcessRegistry:
    """The subprocesses this benchmark started, so that an interrupt ends exactly these."""

    def __init__(self):
        self._lock = threading.Lock()
        self._procs = set()
        self.stopping = False

    def add(self, proc):
        with self._lock:
            if self.stopping:
                proc.terminate()
            self._procs.add(proc)

    def discard(self, proc):
        with self._lock:
            self._procs.discard(proc)

    def terminate_all(self, grace_s=10):
        with self._lock:
            self.stopping = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.time() + grace_s
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()


def end_process(proc, grace_s=10):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_logged(command, log_path, env, registry, on_line=None):
    """Run ``command``, appending its combined output to ``log_path``; returns (return code, last lines)."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    tail = deque(maxlen=LOG_TAIL_LINES)
    with open(log_path, 'a') as log:
        log.write(f"\n===== kdzoo benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, text=True, errors='replace', bufsize=1)
        registry.add(proc)
        try:
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip('\n'))
                if on_line:
                    on_line(line)
            returncode = proc.wait()
        except BaseException:
            end_process(proc)
            raise
        finally:
            registry.discard(proc)
    return returncode, list(tail)
