"""Audio engines: decoding, beat analysis and the test-song synthesizer."""
