"""Algorithms over chunk sources: initialisation and the batch EM loop."""
