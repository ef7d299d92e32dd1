"""Judge backends: one small async list-in/list-out contract (see :mod:`.base`)."""
