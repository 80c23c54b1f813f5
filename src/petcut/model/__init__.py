"""Model layer: checkpoints, the InSPyReNet segmenter and the runtime that owns it."""
