"""pypbx: a SIP PBX with a skills-based ACD for small medical clinics."""

__version__ = "0.1.0"
