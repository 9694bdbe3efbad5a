"""ISO/IEC 7816-4: APDUs, BER-TLV, status words."""
