"""mmengine's Runner with a short console header: the full environment, config and hook order go to the log file.

mmengine prints about 260 lines (system environment, the whole config, the hook order) before the first
training line. They matter for reproducing a run, so the log file keeps them verbatim; the console gets one
line each that says where to find them.
"""
import copy
import logging

from mmengine.runner import Runner

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


class KdzooRunner(Runner):
    """The Runner kdzoo's tools build (see the module docstring); everything else is mmengine's."""

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
