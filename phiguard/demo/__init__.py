"""The synthetic hospital (generator) and the end-to-end demo story."""
