"""``python -m broker`` runs the ``edgemq`` command."""

from broker.cli import main

raise SystemExit(main())
