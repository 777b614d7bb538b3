"""Progress lines while cells run: cells done and left, what each running cell does, an ETA."""
import re
import threading
import time

def print_flush(*args):
    print(*args, flush=True)


TRAIN_LINE = re.compile(r'(Epoch|Iter)\(train\)\s*(?:\[\s*(\d+)\])?\s*\[\s*(\d+)/(\d+)\]')


def format_duration(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def train_position(line):
    """'epoch 3 [10/16]' (or 'iter 100/1000') from an mmengine training log line, or None."""
    match = TRAIN_LINE.search(line)
    if not match:
        return None
    kind, epoch, it, total = match.groups()
    return f'iter {it}/{total}' if kind == 'Iter' else f'epoch {epoch} [{it}/{total}]'


class Progress:
    """Cells done / left, what each running cell is doing, and an ETA from the finished cells' durations."""

    def __init__(self, total, skipped, to_run, workers, max_epochs=None):
        self.lock = threading.Lock()
        self.total, self.skipped, self.to_run, self.workers = total, skipped, to_run, workers
        self.max_epochs = max_epochs or {}
        self.running = {}  # cell id -> (start time, position)
        self.durations, self.failed, self.untimed = [], 0, 0
        self.changed = True

    def start(self, cell):
        with self.lock:
            self.running[cell.id] = (time.time(), 'starting')
            self.changed = True

    def line(self, cell, text):
        position = train_position(text)
        if position is None:
            if 'on the validation set' in text:
                position = 'evaluating the teacher'
            elif '(val)' in text:
                position = 'validating'
            else:
                return
        max_epochs = self.max_epochs.get(cell.config)
        if max_epochs and position.startswith('epoch '):
            epoch, _, rest = position[6:].partition(' ')
            position = f'epoch {epoch}/{max_epochs} {rest}'.rstrip()
        with self.lock:
            if cell.id in self.running:
                self.running[cell.id] = (self.running[cell.id][0], position)
                self.changed = True

    def finish(self, cell, result, timed=True):
        """A cell is over; ``timed=False`` for one that never ran (it does not count towards the ETA)."""
        with self.lock:
            self.running.pop(cell.id, None)
            if timed:
                self.durations.append(result.get('duration_s') or 0.0)
            else:
                self.untimed += 1
            self.failed += result.get('status') == 'failed'
            self.changed = True

    def eta(self):
        if not self.durations:
            return 'after the first cell'
        mean = sum(self.durations) / len(self.durations)
        waiting = self.to_run - len(self.durations) - self.untimed - len(self.running)
        remaining = sum(max(mean - (time.time() - start), 0) for start, _ in self.running.values())
        return format_duration((remaining + waiting * mean) / max(1, min(self.workers, self.to_run)))

    def render(self):
        with self.lock:
            self.changed = False
            done = self.skipped + len(self.durations) + self.untimed
            failed = f' ({self.failed} failed)' if self.failed else ''
            running = ', '.join(f'{cid} {pos}' for cid, (_, pos) in self.running.items()) or 'none running'
            return (f'[benchmark] {done}/{self.total} cells done{failed}, {self.total - done} left | '
                    f'{running} | ETA {self.eta()}')
