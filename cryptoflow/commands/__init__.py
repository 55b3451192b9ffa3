"""One module per ``cryptoflow`` subcommand: ``configure(parser)`` and ``main(args) -> int``."""
