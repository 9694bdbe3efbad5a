"""ICAO 9303-10 Logical Data Structure 1: the files of an eMRTD chip and their codecs.

Pure codecs, bytes in and objects out; every decoder is strict and raises
:class:`applets.errors.LDSError` (or :class:`~applets.errors.MRZError`) naming the file,
field and reason. ``mrz`` (TD1 MRZ), ``com`` (EF.COM), ``dg1`` (MRZ), ``dg2`` (face,
ISO/IEC 19794-5), ``dg13`` (Vietnamese CCCD personal data), ``dg14`` (SecurityInfos),
``dg15`` (Active Authentication key), ``sod`` (EF.SOD builder and parser), ``asn1`` (DER
helpers and the LDSSecurityObject ASN.1 types), ``files`` (FIDs, SFIs, tags).
"""
