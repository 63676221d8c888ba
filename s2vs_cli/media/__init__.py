"""What reads video: frame sources (video files, frame folders), sampling, the inputs of bulk commands."""
