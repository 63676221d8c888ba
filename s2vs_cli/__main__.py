"""`python -m s2vs_cli` runs the command line."""
from .cli import main

main()
