"""The Django project that wires the `scheduler` app into a runnable site."""
