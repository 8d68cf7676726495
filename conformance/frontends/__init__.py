"""Front ends: the attnconf CLI, the pytest plugin, reports and the detection matrix."""
