"""Data for training and evaluation: the committed split, the kern-snippet cutter, rendering,
augmentation and the test sets. Corpora are read in place from `settings.data_dir()`."""
