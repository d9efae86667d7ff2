"""deita_pairwise: the evaluated model judges two runs' deita replies head to head."""
