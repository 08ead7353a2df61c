"""`python -m streammix`: for now, the demo (the full command line comes with issue 6)."""

from .demo import main

raise SystemExit(main())
