"""Exceptions shared by the model and the electrostatics code (a leaf module: imports nothing)."""

__all__ = ["CapacityError"]


class CapacityError(ValueError):
    """A static capacity is too small for the request: graph nodes, edges or structures
    (:func:`eqlr_jax.graph.build_graph`), or the Ewald pair list or k-vector set
    (:meth:`eqlr_jax.electrostatics.EwaldSetup.build`)."""
