"""The console header stays short (the log file keeps the full dump) and the closing summary keeps 4 digits."""
import io
import json
import logging
from types import SimpleNamespace

from mmengine.logging import MessageHub

from kdzoo.engine.runner import DASH_LINE, ShortConsoleHeader
from kdzoo.tools_support import final_summary


def test_long_startup_messages_reach_the_file_whole_and_the_console_as_one_line(tmp_path):
    logger = logging.getLogger('kdzoo-test-header')
    logger.setLevel(logging.INFO)
    console_stream = io.StringIO()
    console = logging.StreamHandler(console_stream)
    log_file = tmp_path / 'run.log'
    file_handler = logging.FileHandler(log_file)
    console.addFilter(ShortConsoleHeader(console, str(log_file)))
    logger.addHandler(console)
    logger.addHandler(file_handler)
    try:
        config = 'Config:\n' + '\n'.join(f'key_{i} = {i}' for i in range(200))
        logger.info(config)
        logger.info(f'\n{DASH_LINE}\nSystem environment:\n    sys.platform: linux')
        logger.info('Epoch(train) [1][1/2]  loss: 2.4')
    finally:
        logger.removeHandler(console)
        logger.removeHandler(file_handler)
        file_handler.close()
    shown = console_stream.getvalue().splitlines()
    assert shown == [f'the full config: see {log_file}', f'system and runtime environment: see {log_file}',
                     'Epoch(train) [1][1/2]  loss: 2.4']
    kept = log_file.read_text()
    assert 'key_199 = 199' in kept and 'sys.platform: linux' in kept


def test_summary_keeps_four_significant_digits():
    hub = MessageHub.get_instance('kdzoo-test-summary')
    hub.update_info('teacher/vit/accuracy/top1', 97.4512)
    hub.update_scalar('val/orl/auc', 0.95664)
    hub.update_scalar('val/time', 0.5)
    lines = []
    final_summary(SimpleNamespace(message_hub=hub, logger=SimpleNamespace(info=lines.append)))
    assert lines == ['kdzoo summary: teacher vit accuracy/top1: 97.45; student orl/auc: 0.9566']


def test_small_loss_values_keep_significant_digits_in_the_log_line():
    """Before: a live 2e-5 attention term printed as 0.0000, like a dead one."""
    from kdzoo.engine.runner import SmallValue
    assert f'{SmallValue(2.3456e-5):.4f}' == '2.346e-05'
    assert f'{SmallValue(0.0):.4f}' == '0.0000' and f'{SmallValue(1.5):.4f}' == '1.5000'
    assert json.dumps({'loss': SmallValue(2.5e-5)}) == '{"loss": 2.5e-05}'


def test_significant_digits_processor_formats_losses_only():
    from mmengine.config import Config

    from kdzoo.engine.runner import SignificantDigitsLogProcessor, SmallValue
    hub = MessageHub.get_instance('kdzoo-test-log-processor')
    hub.update_scalar('train/loss_urfm_attn', 2.5e-5)
    hub.update_scalar('train/lr', 1e-5)
    processor = SignificantDigitsLogProcessor(window_size=1)
    tag = processor._collect_scalars([], SimpleNamespace(message_hub=hub), 'train')
    assert isinstance(tag['loss_urfm_attn'], SmallValue) and not isinstance(tag['lr'], SmallValue)
    runtime = Config.fromfile('configs/_base_/default_runtime.py')
    assert runtime.log_processor.type == 'kdzoo.SignificantDigitsLogProcessor'
