"""C firmware that sequences the engine through its register map."""
