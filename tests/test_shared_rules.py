"""One of each: the capacity error is shared by the model side (graph) and the electrostatics side."""
import dataclasses

import numpy as np
import pytest

import eqlr_jax
from eqlr_jax import electrostatics as es
from eqlr_jax.graph import Capacity
from eqlr_jax.structure import Structure


def test_capacity_error_is_one_class():
    assert eqlr_jax.graph.CapacityError is es.CapacityError is eqlr_jax.CapacityError
    assert issubclass(eqlr_jax.CapacityError, ValueError)


def test_pair_list_and_graph_overflows_are_both_caught_as_capacity_error():
    rng = np.random.default_rng(0)
    cell = 6.0 * np.eye(3)
    pos = rng.random((6, 3)) @ cell
    setup = es.prepare_ewald(cell, 6, 0.5, 1e-8)
    small = dataclasses.replace(setup, pair_capacity=int(setup.build(pos).pairs.n_found) - 1)
    caught = []
    try:
        small.build(pos)
    except eqlr_jax.CapacityError as e:
        caught.append(e)
    s = Structure(pos, [11, 17] * 3, cell, True)
    try:
        eqlr_jax.build_graph(s, 4.0, [11, 17], capacity=Capacity(16, 16, 2))
    except eqlr_jax.CapacityError as e:
        caught.append(e)
    assert len(caught) == 2
    assert "pair list" in str(caught[0]) and "edges" in str(caught[1])
