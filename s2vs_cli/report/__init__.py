"""Pictures for people: the frame-to-frame heatmap."""
