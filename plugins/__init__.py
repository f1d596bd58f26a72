"""Built-in preference plugins."""
