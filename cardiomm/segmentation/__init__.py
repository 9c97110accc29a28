"""Cardiac segmentation of reconstructed images with MONAI: the classes, the reference slices
of the synthetic set, the network and its training (the clinical check of issue 16)."""
