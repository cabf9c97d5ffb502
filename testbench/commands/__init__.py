"""Sub-commands of the ``sbpca`` command line."""
