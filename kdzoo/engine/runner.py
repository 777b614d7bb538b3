"""mmengine's Runner with a short console header: the full environment, config and hook order go to the log file.

mmengine prints about 260 lines (system environment, the whole config, the hook order) before the first
training line. They matter for reproducing a run, so the log file keeps them verbatim; the console gets one
line each that says where to find them.
"""
import copy
import logging

from mmengine.runner import LogProcessor, Runner

from kdzoo.registry import LOG_PROCESSORS, RUNNERS

from .checkpoint import RunnerCheckpointing

DASH_LINE = '-' * 60
LONG_STARTUP_MESSAGES = {
    f'\n{DASH_LINE}\nSystem environment:': 'system and runtime environment',
    'Config:\n': 'the full config',
    'Hooks will be executed in the following order:': 'the hook order',
}


class ShortConsoleHeader(logging.Filter):
    """Filter for a console handler: a long startup message becomes one line naming the log file."""

    def __init__(self, handler, log_file):
        super().__init__()
        self.handler = handler
        self.log_file = log_file

    def filter(self, record):
        message = record.getMessage()
        for prefix, what in LONG_STARTUP_MESSAGES.items():
            if message.startswith(prefix):
                short = copy.copy(record)
                short.msg, short.args = f'{what}: see {self.log_file}', ()
                self.handler.emit(short)
                return False
        return True


@RUNNERS.register_module()
class KdzooRunner(RunnerCheckpointing, Runner):
    """The Runner kdzoo's tools build (see the module docstring), with atomic checkpoints, honest resume and a
    work_dir lock (:mod:`kdzoo.engine.checkpoint`); everything else is mmengine's."""

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        file_handlers = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        if file_handlers:
            log_file = file_handlers[0].baseFilename
            for handler in logger.handlers:
                already = any(isinstance(f, ShortConsoleHeader) for f in handler.filters)
                if type(handler) is logging.StreamHandler and not already:
                    handler.addFilter(ShortConsoleHeader(handler, log_file))
        return logger


class SmallValue(float):
    """A logged value that keeps 4 significant digits where mmengine's fixed ``.4f`` would print 0.0000.

    A distillation term of 2e-5 (an attention-map MSE, say) is alive; printed as ``0.0000`` it looks dead.
    The number itself is an ordinary float for everything else (message hub, visualisers, json).
    """

    def __format__(self, spec):
        if spec.endswith('f') and self != 0 and abs(self) < 0.01:
            return format(float(self), '.4g')
        return format(float(self), spec)


@LOG_PROCESSORS.register_module()
class SignificantDigitsLogProcessor(LogProcessor):
    """mmengine's LogProcessor, with loss values below 0.01 printed to 4 significant digits (:class:`SmallValue`)."""

    def _collect_scalars(self, custom_cfg, runner, mode, reserve_prefix=False):
        tag = super()._collect_scalars(custom_cfg, runner, mode, reserve_prefix)
        return type(tag)((key, SmallValue(value) if 'loss' in key and isinstance(value, float) else value)
                         for key, value in tag.items())
