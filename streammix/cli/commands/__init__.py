"""One module per `streammix` command; each exposes ``run(cfg_or_args, opts, log) -> int``."""
