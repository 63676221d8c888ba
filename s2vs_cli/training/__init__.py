"""What self-supervised training is made of: clips, augmentations, losses, learning-rate schedule."""
