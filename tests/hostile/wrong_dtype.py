"""Returns float32 for float64 inputs on the trigger cases (the numbers are right)."""

import numpy as np

from hostile._honest import sdpa_with

sdpa = sdpa_with(lambda honest, query, key, value: honest().astype(np.float32))
