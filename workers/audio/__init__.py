"""Audio engines: decoding, music analysis (tempo, beats, meter, sections,
loudness), the song's picture and the test-song synthesizer.

    from workers.audio.analysis import analyze_audio, AudioAnalysisError
"""
