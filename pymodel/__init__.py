"""Golden model: fixed-point formats, float and bit-accurate SBPCA, baselines, CNN training."""
