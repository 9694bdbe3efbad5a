"""ICAO 9303-10 Logical Data Structure 1: the files of an eMRTD chip and their codecs."""
