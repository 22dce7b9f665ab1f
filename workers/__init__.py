"""Media engines of the studio. Nothing here imports Django: engines take paths,
arrays and plain parameters and return plain results."""
