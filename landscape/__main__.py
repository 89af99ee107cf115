"""``python -m landscape``: the ``landscape`` command line (:func:`landscape.cli.entry`)."""

from landscape.cli import entry

if __name__ == "__main__":
    entry()
