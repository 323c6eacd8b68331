"""Humdrum **kern: parse, validate, repair, normalise and convert (music21/converter21/verovio).

`parse` and `validate` are pure Python and import nothing heavy; `convert` imports music21 and
converter21 when called.
"""
