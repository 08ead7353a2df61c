"""`python -m streammix`: the command line (see streammix.cli)."""

from .cli import main

raise SystemExit(main())
