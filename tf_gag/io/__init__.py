"""What comes in: argument checks, targets, tf.data input, image files and ImageNet-S."""
