"""docs/methods/: one page per registered distiller and adapter, whose 'Defaults' tables match the code, and
no reference to material outside the repository anywhere in the project."""
import ast
import inspect
import os
import os.path as osp
import re

import pytest

import kdzoo  # noqa: F401  (registers everything)
from kdzoo.registry import ADAPTERS, DISTILLERS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
METHODS = osp.join(ROOT, 'docs', 'methods')
HEADER = re.compile(r'^\|\s*((?:`\w+`\s*/\s*)*`\w+`)\s+argument\s*\|')
ROW = re.compile(r'^\|\s*`(\w+)`\s*\|\s*`([^`]*)`\s*\|')


def defaults_tables():
    """{registered type: {argument: default}} from the tables headed ``| `type` argument | default |``."""
    tables = {}
    for name in sorted(os.listdir(METHODS)):
        current = None
        for line in open(osp.join(METHODS, name), encoding='utf-8'):
            header = HEADER.match(line)
            if header:
                current = {}
                for type_name in re.findall(r'`(\w+)`', header.group(1)):
                    assert type_name not in tables, f"{type_name} has two Defaults tables (second in {name})"
                    tables[type_name] = current
                continue
            row = ROW.match(line)
            if current is not None and row:
                current[row.group(1)] = ast.literal_eval(row.group(2))
            elif not line.startswith('|'):
                current = None
    return tables


def own_arguments(cls):
    """{argument: default} of ``cls``'s constructor, following ``**kwargs`` up to the first class without it."""
    arguments = {}
    for owner in cls.__mro__:
        if '__init__' not in vars(owner):
            continue
        parameters = inspect.signature(owner.__init__).parameters
        for key, parameter in parameters.items():
            if key != 'self' and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                arguments.setdefault(key, parameter.default)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    return arguments


BASE_ARGUMENTS = {'loss_weight', 'schedule', 'teacher'}   # BaseDistiller's, documented once in docs/methods.md


def registered_types():
    names = [('distiller', DISTILLERS, n) for n in DISTILLERS.module_dict if n.islower()]
    return names + [('adapter', ADAPTERS, n) for n in ADAPTERS.module_dict if n.islower()]


@pytest.mark.parametrize('kind, registry, name', registered_types(), ids=lambda v: v if isinstance(v, str) else '')
def test_every_registered_type_has_a_defaults_table_that_matches_its_code(kind, registry, name):
    tables = defaults_tables()
    assert name in tables, (f"{kind} {name!r} has no Defaults table in docs/methods/: add a table headed "
                            f"'| `{name}` argument | default | note |' to its page")
    documented = tables[name]
    code = own_arguments(registry.get(name))
    # Arguments a class inherits unchanged from BaseDistiller may be left to docs/methods.md; ones the class
    # declares itself (with its own default) must be in its table.
    declared = set(inspect.signature(registry.get(name).__init__).parameters) - {'self', 'kwargs'}
    required = {k for k in code if k not in BASE_ARGUMENTS or k in declared}
    assert required <= set(documented), f"{name}: arguments missing from its Defaults table: " \
                                        f"{sorted(required - set(documented))}"
    assert set(documented) <= set(code), f"{name}: the table lists arguments the code does not take: " \
                                         f"{sorted(set(documented) - set(code))}"
    for argument, value in documented.items():
        assert value == code[argument], f"{name}.{argument}: docs say {value!r}, the code's default is " \
                                        f"{code[argument]!r}"


def test_every_method_page_is_linked_from_the_index_and_readme():
    index = open(osp.join(ROOT, 'docs', 'methods.md'), encoding='utf-8').read()
    pages = sorted(n for n in os.listdir(METHODS) if n.endswith('.md'))
    assert pages
    for page in pages:
        assert f'methods/{page}' in index, f"docs/methods.md does not link methods/{page}"
    assert 'docs/methods.md' in open(osp.join(ROOT, 'README.md'), encoding='utf-8').read()


SCANNED = ('kdzoo', 'tools', 'tests', 'docs', 'configs', 'README.md')
FORBIDDEN = re.compile('|'.join([re.escape('..' + '/shared'), 'method' + '_specs']))


def project_text_files():
    for top in SCANNED:
        path = osp.join(ROOT, top)
        if osp.isfile(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d != '__pycache__' and not d.startswith('.')]
            for name in files:
                if name.endswith(('.py', '.md', '.txt', '.yaml', '.yml', '.json', '.cfg', '.toml', '.sh')):
                    yield osp.join(folder, name)


def test_nothing_points_outside_the_repository():
    """The method reference lives in docs/methods/; no code, test, config or doc cites material outside it."""
    offenders = []
    for path in project_text_files():
        for number, line in enumerate(open(path, encoding='utf-8', errors='replace'), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{osp.relpath(path, ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "references to material outside the repository (cite the paper and docs/methods/ " \
                          "instead):\n" + '\n'.join(offenders)


SECTION_CITATION = re.compile(r'(docs/[\w/]+\.md) §(\d+)(?:-(\d+))?')


def test_every_cited_section_exists_in_the_repository():
    """``docs/<page>.md §N`` citations in code, configs, tests and docs name a numbered section of that page."""
    missing = []
    for path in project_text_files():
        for number, line in enumerate(open(path, encoding='utf-8', errors='replace'), 1):
            for page, first, last in SECTION_CITATION.findall(line):
                target = osp.join(ROOT, page)
                headings = open(target, encoding='utf-8').read() if osp.isfile(target) else ''
                for section in range(int(first), int(last or first) + 1):
                    if not re.search(rf'^#+ {section}\. ', headings, re.MULTILINE):
                        missing.append(f"{osp.relpath(path, ROOT)}:{number}: {page} §{section}")
    assert not missing, "citations of sections that do not exist:\n" + '\n'.join(missing)
