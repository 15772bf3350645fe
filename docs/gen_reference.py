"""mkdocs-gen-files script: the reference pages written from the code (`make docs` runs it)."""

import mkdocs_gen_files

from byol.cli.reference import cli_reference
from byol.config.docs import config_reference

for page, text in (("reference/config.md", config_reference()), ("reference/cli.md", cli_reference())):
    with mkdocs_gen_files.open(page, "w") as f:
        f.write(text)
