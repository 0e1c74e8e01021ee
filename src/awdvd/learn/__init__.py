"""Networks, the model file, checkpoints, recipes, training, evaluation of a model on a dataset, bioimage.io."""
