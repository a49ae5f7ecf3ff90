"""`python -m egogrpo`."""

from egogrpo.cli.main import main

main()
