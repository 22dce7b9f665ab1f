"""Video assembly engines: still-to-clip rendering, concatenation with the music,
output presets and the ffmpeg runner they share."""
