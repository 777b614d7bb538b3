"""Command lines that the installed package owns: ``python -m kdzoo.cli.<name>``.

tools/*.py are thin wrappers around these for a source checkout; the benchmark runs its cells with
``python -m kdzoo.cli.train`` so that an installed kdzoo needs no checkout.
"""
