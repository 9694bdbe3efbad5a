"""The eMRTD application: LDS data, access control, secure messaging, personalization."""
