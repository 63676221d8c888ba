"""What computes: the region extractor, the ViSiL network, their weights and how they are loaded."""
