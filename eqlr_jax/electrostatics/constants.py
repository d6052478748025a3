"""Physical constants and defaults of the electrostatics package.

Units throughout the package: energies in eV, lengths in Å, charges in e.
"""

#: Coulomb constant e²/(4π ε₀) in eV·Å/e² (CODATA 2018; the value used by NequIP-LR).
KE = 14.399645478425668

#: Default requested accuracy of the Ewald sum (relative, dimensionless).
DEFAULT_ACCURACY = 1e-6

#: Default accuracy of the convenience functions ``coulomb_energy`` / ``coulomb_matrix``.
CONVENIENCE_ACCURACY = 1e-8
