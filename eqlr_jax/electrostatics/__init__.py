"""Electrostatics of Gaussian charges (pure JAX; never imports the neural network)."""
