"""``python -m multistore``: the same as the ``multistore`` command."""

from multistore.cli import main

raise SystemExit(main())
