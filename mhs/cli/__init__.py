"""The ``mhs`` command line."""
