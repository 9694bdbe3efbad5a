"""Object identifiers of EAC: PACE, Chip Authentication, Terminal Authentication and the
inspection-system role (BSI TR-03110-3 Appendix A.1.1; ICAO 9303-11 §9.2)."""

from __future__ import annotations

BSI_DE = "0.4.0.127.0.7"  # bsi-de
ID_PK = f"{BSI_DE}.2.2.1"  # id-PK: public keys for Chip Authentication
ID_PK_DH = f"{ID_PK}.1"
ID_PK_ECDH = f"{ID_PK}.2"  # CA public key in DG14 (ChipAuthenticationPublicKeyInfo)

ID_TA = f"{BSI_DE}.2.2.2"  # id-TA (TerminalAuthenticationInfo protocol)
ID_TA_ECDSA = f"{ID_TA}.2"
ID_TA_ECDSA_SHA_1 = f"{ID_TA_ECDSA}.1"
ID_TA_ECDSA_SHA_224 = f"{ID_TA_ECDSA}.2"
ID_TA_ECDSA_SHA_256 = f"{ID_TA_ECDSA}.3"
ID_TA_ECDSA_SHA_384 = f"{ID_TA_ECDSA}.4"
ID_TA_ECDSA_SHA_512 = f"{ID_TA_ECDSA}.5"

ID_CA = f"{BSI_DE}.2.2.3"  # id-CA
ID_CA_ECDH = f"{ID_CA}.2"
ID_CA_ECDH_3DES_CBC_CBC = f"{ID_CA_ECDH}.1"
ID_CA_ECDH_AES_CBC_CMAC_128 = f"{ID_CA_ECDH}.2"
ID_CA_ECDH_AES_CBC_CMAC_192 = f"{ID_CA_ECDH}.3"
ID_CA_ECDH_AES_CBC_CMAC_256 = f"{ID_CA_ECDH}.4"

ID_PACE = f"{BSI_DE}.2.2.4"  # id-PACE
ID_PACE_ECDH_GM = f"{ID_PACE}.2"
ID_PACE_ECDH_GM_3DES_CBC_CBC = f"{ID_PACE_ECDH_GM}.1"
ID_PACE_ECDH_GM_AES_CBC_CMAC_128 = f"{ID_PACE_ECDH_GM}.2"
ID_PACE_ECDH_GM_AES_CBC_CMAC_192 = f"{ID_PACE_ECDH_GM}.3"
ID_PACE_ECDH_GM_AES_CBC_CMAC_256 = f"{ID_PACE_ECDH_GM}.4"

ID_ROLES = f"{BSI_DE}.3.1.2"
ID_IS = f"{ID_ROLES}.1"  # inspection systems: the CHAT of the eMRTD's EAC (TR-03110-3 C.4.1)

ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # X9.62 ecPublicKey (explicit parameters in DG14)
ID_PRIME_FIELD = "1.2.840.10045.1.1"  # X9.62 prime-field
