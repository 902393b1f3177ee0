"""``python -m mlplab`` is the same as the ``mlplab`` command."""

from mlplab.cli import run

if __name__ == "__main__":
    run()
