"""The command-line tools, on top of the library in ``runtime/`` (docs/architecture.md).

``main.py`` is the ``nat`` entry point and dispatches to ``nat.py`` (tokenize), ``diff.py``,
``prompt.py`` (with ``budget.py``), ``packs.py``, ``batch/`` and, for ``--all-outputs``,
``report/``. Tools import the library; the library never imports a tool.
"""
