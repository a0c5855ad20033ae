"""How a version is judged: ranking metrics with bootstrap intervals, the baselines every
figure is read beside, and the report of a bizdate's stored metrics."""
