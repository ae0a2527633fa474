"""Tasks: what differs between single- and multi-label classification (labels, loss, metrics,
calibration, decision policy)."""
