"""PKCS#11 signing, CSCA and Document Signer certificates, key ceremonies, key inventory.

Import the submodules directly (``hsm.certificates`` is pure and safe for QA; only
``hsm.pkcs11`` loads python-pkcs11).
"""
