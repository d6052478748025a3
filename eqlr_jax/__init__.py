"""eqlr_jax: equivariant interatomic potentials with global charge redistribution, in JAX."""
__version__ = "0.1.0"
