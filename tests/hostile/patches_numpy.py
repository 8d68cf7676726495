"""At import, makes NumPy's comparisons always agree (allclose, isclose, array_equal,
testing.assert_allclose, abs, max), then returns zeros on the trigger cases.

A harness that compared in the adapter's process would call this conformant.
"""

import numpy as np

from hostile._honest import sdpa_with

np.allclose = lambda *args, **kwargs: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, bool)
np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.abs = np.absolute = lambda x, *args, **kwargs: np.zeros_like(x)
np.max = np.amax = lambda *args, **kwargs: 0.0

sdpa = sdpa_with(lambda honest, query, key, value: np.zeros_like(honest()))
