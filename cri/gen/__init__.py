"""Generated from cri/proto/ by `python -m cri.generate`; do not edit."""
