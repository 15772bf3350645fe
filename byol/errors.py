"""The one exception type for bad input: the CLI prints it as a single line and exits with 2."""


class ByolError(Exception):
    """A bad option, file or folder, with a message that names it."""
