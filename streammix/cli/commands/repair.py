"""`streammix repair CHECKPOINT`: after a damaged latest version (exit code 4 from any
command) or a lost CURRENT.json, point the checkpoint at its newest version that
verifies, so that fits, updates and scoring continue from there."""

from __future__ import annotations

from ...persistence import repair
from ..config import require_checkpoint


def run(args, opts, log) -> int:
    require_checkpoint(args.checkpoint)
    before, now, problems = repair(args.checkpoint)
    for p in problems:
        log.warning(f"skipped: {p}")
    if before == now:
        log.info(f"nothing to repair: version {now} (current) verifies",
                 fields={"version": now, "repaired": False})
    else:
        log.info(f"CURRENT.json now points to version {now} (was "
                 f"{'missing or unreadable' if before is None else before}); the next run "
                 "continues from it", fields={"version": now, "before": before,
                                              "repaired": True})
    return 0
