"""The ``byol`` command line: one module per subcommand, dispatched from ``__main__``."""
